package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"meridian.dev/meridian/inference"
	"meridian.dev/meridian/internal/httpserve"
)

// The model server runs in a child process, this binary re-executed with
// childEnv=serve (a hidden mode, not a flag), so that its CPU time can be
// read alone, apart from the load generator's and the raw side's, which
// stay in the parent.
//
// The protocol is line-based. The child prints "bench-child: addr
// HOST:PORT NATIVE:PORT" on stdout once it listens (the server's port,
// and its gRPC service alone on a native listener), then reads commands from stdin,
// answering each with "bench-child: ok" or "bench-child: error: ...":
//
//	profile start   start the CPU profile (-cpuprofile) and write the
//	                allocation base profile (-memprofile FILE.base)
//	profile stop    stop the CPU profile, write FILE (-memprofile)
//
// It exits when its stdin closes, so a parent that dies, even killed,
// leaves no server behind.
const (
	childEnv    = "MERIDIAN_BENCH_CHILD"
	childPrefix = "bench-child: "
)

// serveChild is the child's whole life: the same inference.Server, with
// the same options and the same listener wrapper the bench always used,
// on 127.0.0.1:0, until stdin closes.
func serveChild(c config) error {
	if c.memProfile != "" {
		runtime.MemProfileRate = 64 << 10 // as early as possible, so every sample has the same rate
	}
	lib, err := inference.FindLibrary(c.ortLib)
	if err != nil {
		return err
	}
	if err := inference.InitRuntime(lib); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := inference.New(inference.Options{ModelRepository: c.models, CacheSize: 0, Logger: logger})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs, err := httpserve.New(srv.Handler(), httpserve.Options{Name: "inference"}) // as meridian serve's listener
	if err != nil {
		return err
	}
	go func() { _ = hs.Serve(httpserve.Listener(ln)) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}()
	// The same grpc.Server on a listener of its own (grpc-go's native
	// HTTP/2 transport), for P1c to set against the shared port.
	native, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = srv.GRPCServer().Serve(native) }() // stopped by srv.Close
	fmt.Printf("%saddr %s %s\n", childPrefix, ln.Addr(), native.Addr())

	p := &childProfile{cfg: c}
	defer func() { _ = p.stop() }()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() { // until the parent closes stdin or dies
		var err error
		switch cmd := strings.TrimSpace(sc.Text()); cmd {
		case "profile start":
			err = p.start()
		case "profile stop":
			err = p.stop()
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			fmt.Printf("%serror: %v\n", childPrefix, err)
		} else {
			fmt.Printf("%sok\n", childPrefix)
		}
	}
	return nil
}

// childProfile is the child's profile phase: the CPU profile and the
// allocation profiles around it.
type childProfile struct {
	cfg config
	cpu *os.File // open while the CPU profile runs
	on  bool
}

func (p *childProfile) start() error {
	if p.on {
		return errors.New("profile already started")
	}
	if p.cfg.cpuProfile != "" {
		f, err := os.Create(p.cfg.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return err
		}
		p.cpu = f
	}
	p.on = true
	if p.cfg.memProfile != "" {
		runtime.GC() // the profile is as of the last GC
		return writeAllocs(p.cfg.memProfile + ".base")
	}
	return nil
}

func (p *childProfile) stop() error {
	if !p.on {
		return nil
	}
	p.on = false
	var err error
	if p.cpu != nil {
		pprof.StopCPUProfile()
		err = p.cpu.Close()
		p.cpu = nil
	}
	if p.cfg.memProfile != "" {
		runtime.GC() // the profile is as of the last GC
		err = errors.Join(err, writeAllocs(p.cfg.memProfile))
	}
	return err
}

// serverProc is the parent's handle on the child serving the models.
type serverProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	addr   string // 127.0.0.1:PORT, HTTP/1.1 and h2c (gRPC) alike
	native string // 127.0.0.1:PORT, the gRPC service alone, grpc-go's own transport
	clock  int32  // the child's process CPU clock; 0 when it cannot be read
}

// startServer re-executes this binary as the server child with the flags
// the child needs and waits until it listens.
func startServer(c config) (*serverProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-models", c.models, "-ort-lib", c.ortLib, "-cpuprofile", c.cpuProfile, "-memprofile", c.memProfile}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=serve")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line, err := p.reply()
	if err == nil {
		addrs, ok := strings.CutPrefix(line, "addr ")
		if p.addr, p.native, _ = strings.Cut(addrs, " "); !ok || p.native == "" {
			err = fmt.Errorf("server child said %q, want its addresses", line)
		}
	}
	if err != nil {
		_ = p.stop()
		return nil, err
	}
	p.clock = processClock(cmd.Process.Pid)
	return p, nil
}

// reply reads the child's next protocol line; anything else it printed on
// stdout goes to stderr.
func (p *serverProc) reply() (string, error) {
	for {
		line, err := p.out.ReadString('\n')
		if s, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), childPrefix); ok {
			return s, nil
		}
		if line != "" {
			fmt.Fprint(os.Stderr, line)
		}
		if err != nil {
			return "", fmt.Errorf("server child: %w (its stderr says why)", err)
		}
	}
}

// command sends one command and waits for its answer.
func (p *serverProc) command(cmd string) error {
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		return err
	}
	line, err := p.reply()
	if err != nil {
		return err
	}
	if line != "ok" {
		return fmt.Errorf("server child, %s: %s", cmd, line)
	}
	return nil
}

// stop closes the child's stdin, which ends it, and waits for it (killing
// it after 15 s).
func (p *serverProc) stop() error {
	_ = p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("server child did not exit 15s after its stdin closed: %w", <-done)
	}
}

// cpu is the child's CPU time so far (user + system, every thread, live
// or exited): from its process CPU clock in nanoseconds, else from
// /proc/PID/stat in clock ticks.
func (p *serverProc) cpu() time.Duration {
	if p.clock != 0 {
		if d, ok := clockTime(p.clock); ok {
			return d
		}
	}
	return statCPU(p.cmd.Process.Pid)
}

// processClock is the clock ID of pid's process CPU clock (Linux's
// MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED), what clock_getcpuclockid
// returns): the scheduler's sum_exec_runtime over all the process's
// threads, in ns. Linux lets any process read another's. 0 if it cannot
// be read.
func processClock(pid int) int32 {
	id := int32(^pid<<3 | 2)
	if _, ok := clockTime(id); !ok {
		return 0
	}
	return id
}

func clockTime(id int32) (time.Duration, bool) {
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, uintptr(id), uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// statCPU is utime+stime from /proc/PID/stat, in ticks of 10 ms.
func statCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')') // the command name may hold spaces and parentheses
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	// rest starts at field 3 (state); utime and stime are fields 14 and 15.
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// clockName says how cpu reads the child's CPU time.
func (p *serverProc) clockName() string {
	if p.clock != 0 {
		return "CPU time from its process CPU clock, ns"
	}
	return "CPU time from /proc/PID/stat, 10 ms ticks"
}
