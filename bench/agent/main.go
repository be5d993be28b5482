// Command agent is benchmarks P6 and P7. P6: a 5x step in offered load on
// textdir, served by the agent's process runtime on a real control plane,
// and the seconds until the clients' p95 is back under its target — once
// with Meridian's autoscaling settings and once with the Kubernetes HPA's
// defaults (15s sync, no burst mode, default policies), side by side. P7:
// the same step through the real Kubernetes path (real node, the agent's
// metrics adapter, the real HPA) against the process runtime (p7.go).
//
// The load is open loop (internal/loadgen): requests are due on a fixed
// schedule whatever the answers take. Every request counts: the p95 is
// over all requests due in a second, failed and dropped ones as misses,
// and a run whose generator could not offer its load is short whatever
// its latencies. The p95 target is -p95-target, fixed before the run; the
// calibration of one replica sizes the load, never the target.
//
//	go run ./bench/agent   (make bench runs it after `make build`)
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

var (
	meridianBin = flag.String("meridian", "bin/meridian", "meridian binary run as replicas (make build makes it)")
	baseFor     = flag.Duration("base", 15*time.Second, "time at the base load before the step")
	stepFor     = flag.Duration("step", 45*time.Second, "time at 5x the base load")
	baseRate    = flag.Float64("base-rate", 0, "base load in requests/s; 0: 0.19 x one replica's calibrated closed-loop throughput")
	p95Target   = flag.Duration("p95-target", 25*time.Millisecond, "the SLO: the ModelDeployment's p95 target and the recovery criterion (p95 over all requests, misses included); fixed before the run")
	maxReps     = flag.Int("max-replicas", 4, "maxReplicas of the ModelDeployment")
	hpaCheck    = flag.Bool("hpa-defaults", true, "also run with the Kubernetes HPA's defaults, for comparison")
	p7Run       = flag.Bool("p7", true, "also run P7: the same step through the real HPA on a real node (needs root; skipped with the reason otherwise)")
	p6Run       = flag.Bool("p6", true, "run P6")
)

// recoveryTarget is P6's target: p95 back within -p95-target this soon
// after the step.
const recoveryTarget = 15 * time.Second

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/agent:", err)
		os.Exit(1)
	}
}

func run() error {
	bin, err := filepath.Abs(*meridianBin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%w; run `make build` first", err)
	}
	if *baseFor < time.Second || *stepFor < 3*time.Second || *p95Target <= 0 || *baseRate < 0 {
		return fmt.Errorf("-base must be at least 1s, -step at least 3s, -p95-target above 0 and -base-rate not negative")
	}
	fmt.Printf("P6/P7: machine %d cores, %s; p95 target %s (-p95-target)\n", runtime.NumCPU(), runtime.Version(), *p95Target)
	img := textdirBody()
	if !*p6Run {
		return p7(bin, img)
	}
	if err := p6(bin, img); err != nil {
		return err
	}
	if *p7Run {
		return p7(bin, img)
	}
	return nil
}

// p6 runs the step on the process runtime with Meridian's settings and,
// with -hpa-defaults, with the HPA's, and prints the verdict lines.
func p6(bin string, img []byte) error {
	repo, err := textdirRepo()
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(repo) }()
	base, err := sizeLoad("P6: one replica (1 ORT thread)", bin, repo, img)
	if err != nil {
		return err
	}
	meridian := scenario{bench: "P6", name: "meridian", sync: time.Second, window: 5 * time.Second, burst: true}
	res, err := meridian.run(bin, repo, img, base, *p95Target)
	if err != nil {
		return err
	}
	var hpa *result
	if *hpaCheck {
		defaults := scenario{bench: "P6", name: "hpa-defaults", sync: 15 * time.Second, window: 15 * time.Second}
		if hpa, err = defaults.run(bin, repo, img, base, *p95Target); err != nil {
			return err
		}
	}
	fmt.Println()
	verdict := "short"
	if res.recovered && res.recovery <= recoveryTarget && res.load.LoadOffered {
		verdict = "ok"
	}
	fmt.Printf("P6 recovery=%s target<=%s %s (replicas %d -> %d; %s)\n", res, recoveryTarget, verdict, res.startReplicas, res.endReplicas, res.loadString())
	fmt.Printf("P6 scale_reaction=%s (from the step to more replicas than at the step, all ready)\n", res.reactionString())
	fmt.Printf("P6 requests: %s\n", res.countString())
	if hpa != nil {
		fmt.Printf("P6 hpa_defaults_recovery=%s (replicas %d -> %d; sync 15s, no burst mode, default policies; %s)\n", hpa, hpa.startReplicas, hpa.endReplicas, hpa.loadString())
		fmt.Printf("P6 hpa_defaults_scale_reaction=%s; requests: %s\n", hpa.reactionString(), hpa.countString())
	}
	return nil
}

// sizeLoad calibrates one replica of repo, prints it, and returns the
// base load: -base-rate, or 0.19 of the replica's closed-loop throughput,
// so that the step stays within what two cores can serve through the
// load generator (about one replica's closed-loop figure here).
func sizeLoad(what, bin, repo string, img []byte) (float64, error) {
	capacity, unloaded, err := calibrate(bin, repo, img)
	if err != nil {
		return 0, err
	}
	base := *baseRate
	if base == 0 {
		base = 0.19 * capacity
	}
	fmt.Printf("%s serves %.0f img/s closed loop, p95 %.1fms unloaded; base load %.0f/s, step to %.0f/s; p95 target %s (fixed, not calibrated)\n",
		what, capacity, ms(unloaded), base, 5*base, *p95Target)
	return base, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
