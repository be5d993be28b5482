package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// perf is what one dnsperf run reports.
type perf struct {
	qps       float64
	sent      int
	lost      int
	noerror   int
	completed int
	// latencies, in seconds, of every answered query; only for -v runs.
	lat []float64
	// cores dnsperf itself used.
	cores float64
}

var (
	reQPS       = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reSent      = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	reCompleted = regexp.MustCompile(`Queries completed:\s+(\d+)`)
	reLost      = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	reNoError   = regexp.MustCompile(`Response codes:.*NOERROR (\d+)`)
)

// dnsperfArgs are the load settings: -c sockets, -q queries in flight,
// one thread (dnsperf then takes one core of the two, the server the
// other).
type dnsperfArgs struct {
	clients, outstanding int
}

// runDnsperf runs dnsperf against 127.0.0.1:port with the binary query
// file for d. rate > 0 caps the queries per second (-Q) and asks for each
// query's latency (-v), for the percentiles dnsperf does not print.
func runDnsperf(ctx context.Context, a dnsperfArgs, file string, port int, d time.Duration, rate int) (perf, error) {
	clients := a.clients
	if rate > 0 {
		clients = 1 // one socket at a steady rate, as one resolver would send
	}
	args := []string{"-B", "-d", file, "-s", "127.0.0.1", "-p", strconv.Itoa(port),
		"-l", strconv.FormatFloat(d.Seconds(), 'f', -1, 64), "-T", "1",
		"-c", strconv.Itoa(clients), "-q", strconv.Itoa(a.outstanding), "-t", "2"}
	if rate > 0 {
		args = append(args, "-Q", strconv.Itoa(rate), "-v")
	}
	cmd := exec.CommandContext(ctx, "dnsperf", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return perf{}, fmt.Errorf("dnsperf %s: %w\n%s%s", strings.Join(args, " "), err, errb.String(), tail(out.String()))
	}
	p, err := parseDnsperf(out.Bytes())
	st := cmd.ProcessState
	p.cores = (st.UserTime() + st.SystemTime()).Seconds() / time.Since(start).Seconds()
	return p, err
}

func parseDnsperf(b []byte) (perf, error) {
	var p perf
	num := func(re *regexp.Regexp) float64 {
		m := re.FindSubmatch(b)
		if m == nil {
			return math.NaN()
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	p.qps = num(reQPS)
	if math.IsNaN(p.qps) {
		return p, fmt.Errorf("dnsperf printed no rate:\n%s", tail(string(b)))
	}
	p.sent, p.completed, p.lost = int(num(reSent)), int(num(reCompleted)), int(num(reLost))
	if n := num(reNoError); !math.IsNaN(n) {
		p.noerror = int(n)
	}
	// -v prints one line per answer: "> NOERROR <name> <type> <seconds>".
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "> ") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			p.lat = append(p.lat, v)
		}
	}
	return p, nil
}

func tail(s string) string {
	if len(s) > 1500 {
		return "…" + s[len(s)-1500:]
	}
	return s
}

// percentile of sorted values, nearest rank.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// check is what a server answered for the query set.
type check struct {
	answered, nearest, ecs int
	// byAddr counts answers per cluster address.
	byAddr map[netip.Addr]int
}

// checkAnswers asks a server every query once, in order, and counts the
// answers that name the nearest cluster and those that echo ECS. It is
// not timed: it shows that the servers steer (or, for the static
// baseline, do not) before their speed is compared.
func checkAnswers(port int, subnets []subnet) check {
	c := check{byAddr: map[netip.Addr]int{}}
	cl := &mdns.Client{Timeout: time.Second}
	server := "127.0.0.1:" + strconv.Itoa(port)
	for i, s := range subnets {
		r, _, err := cl.Exchange(query(s, uint16(i)), server)
		if err != nil || r.Rcode != mdns.RcodeSuccess {
			continue
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*mdns.A); ok {
				addr, _ := netip.AddrFromSlice(a.A.To4())
				c.answered++
				c.byAddr[addr]++
				if addr == s.want {
					c.nearest++
				}
				break
			}
		}
		if o := r.IsEdns0(); o != nil {
			for _, opt := range o.Option {
				if _, ok := opt.(*mdns.EDNS0_SUBNET); ok {
					c.ecs++
				}
			}
		}
	}
	return c
}

// waitSteering waits until a server answers a European subnet's query
// with the Irish cluster: it has read its config and probed (the balancer)
// or checked the ports (PowerDNS) by then.
func waitSteering(port int, subnets []subnet) func() error {
	return func() error {
		for i, s := range subnets {
			if s.group != "europe" {
				continue
			}
			r, _, err := (&mdns.Client{Timeout: 300 * time.Millisecond}).Exchange(query(s, uint16(i)), "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				return err
			}
			for _, rr := range r.Answer {
				if a, ok := rr.(*mdns.A); ok {
					if got, _ := netip.AddrFromSlice(a.A.To4()); got == s.want {
						return nil
					}
					return fmt.Errorf("%s answered %s, want %s", s.prefix, a.A, s.want)
				}
			}
			return fmt.Errorf("%s: no A record (rcode %s)", s.prefix, mdns.RcodeToString[r.Rcode])
		}
		return fmt.Errorf("no European subnet in the query set")
	}
}

// median of values (the values are reordered).
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
