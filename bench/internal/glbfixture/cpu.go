package glbfixture

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTick = 100

// CPUSample is the machine's busy time and chosen processes' CPU time at
// one moment, read from /proc. Two samples tell how many cores the
// measured processes used and how many everything else on the machine
// used ("others"): on a shared machine that says how much a figure can
// be trusted.
type CPUSample struct {
	at    time.Time
	busy  float64         // machine, seconds, steal excluded
	steal float64         // seconds the hypervisor ran someone else
	procs map[int]float64 // pid -> seconds
}

// SampleCPU reads the machine's counters and those of pids.
func SampleCPU(pids ...int) CPUSample {
	s := CPUSample{at: time.Now(), procs: map[int]float64{}}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i, v := range f[1:] {
			n, _ := strconv.ParseFloat(v, 64)
			switch i {
			case 3, 4: // idle, iowait
			case 7:
				s.steal = n / clockTick
			default:
				if i < 7 {
					s.busy += n / clockTick
				}
			}
		}
	}
	for _, pid := range pids {
		s.procs[pid] = procCPU(pid)
	}
	return s
}

// procCPU is a process's user+system time in seconds, all its threads.
func procCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields count from after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / clockTick
}

// ProcSeconds is the CPU time (user+system, seconds) pid had used by the
// moment of s, or 0 if it was not sampled.
func (s CPUSample) ProcSeconds(pid int) float64 { return s.procs[pid] }

// CPUUse is what happened between two samples, in cores (CPU seconds per
// second of wall time).
type CPUUse struct {
	// Procs are the cores each sampled pid used.
	Procs map[int]float64
	// Machine is the cores the whole machine was busy, Steal those the
	// hypervisor gave to other machines.
	Machine, Steal float64
}

// Since is the use between an earlier sample and s.
func (s CPUSample) Since(before CPUSample) CPUUse {
	wall := s.at.Sub(before.at).Seconds()
	u := CPUUse{Procs: map[int]float64{}}
	if wall <= 0 {
		return u
	}
	u.Machine = (s.busy - before.busy) / wall
	u.Steal = (s.steal - before.steal) / wall
	for pid, v := range s.procs {
		u.Procs[pid] = (v - before.procs[pid]) / wall
	}
	return u
}

// Others are the cores used by everything but the sampled pids and known
// (cores used by processes measured another way, such as a load generator
// that has exited).
func (u CPUUse) Others(known float64) float64 {
	o := u.Machine - known
	for _, v := range u.Procs {
		o -= v
	}
	return max(o, 0)
}

// PID is the process id of p.
func (p *Proc) PID() int { return p.cmd.Process.Pid }
