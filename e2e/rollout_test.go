package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/fleet"
	"meridian.dev/meridian/internal/loadgen"
	"meridian.dev/meridian/internal/testbin"
)

// TestVersionsAndRollouts runs the versions of sentiment on a local
// fleet of three regions with production timing: version 1, version 2
// (recalibrated), version 3, which loads but fails every request, and
// version 4, which answers every request NEGATIVE (testbin.RolloutModels). Requests go through the balancer's HTTP front
// and straight to the regions' fronts, as DNS users reach them; the
// version that answered is read from the Meridian-Model-Version header.
func TestVersionsAndRollouts(t *testing.T) {
	dir := t.TempDir()
	bin, err := testbin.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	repo, lib := testbin.RolloutModels(t), testbin.ORTLibrary(t)
	geo4, geo6 := testbin.GeoDatabases(t)
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f, err := fleet.Up(ctx, fleet.Options{
		StateDir: dir, Binary: bin, ModelRepository: repo, ServeArgs: []string{"--ort-lib", lib, "--cache-size", "0"},
		Logger: logger(), DNSListen: "127.0.0.1:0", HTTPListeners: []net.Listener{front},
		GeoIPv4: geo4, GeoIPv6: geo6,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	wait, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := f.WaitReady(wait); err != nil {
		t.Fatal(err)
	}
	c := f.Client()
	tc, err := f.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	frontURL := f.Scheme() + "://" + front.Addr().String()
	endpoints, err := f.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// ask posts to base's /analyze through hc and returns the status and
	// the version that answered.
	ask := func(ctx context.Context, hc *http.Client, base string, set func(*http.Request)) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/analyze", strings.NewReader(`{"text":"I love this"}`))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Authorization", "Bearer "+f.APIKey())
		if set != nil {
			set(req)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Meridian-Model-Version"), nil
	}
	// gateways reach each region's gateway by the model's name, as a
	// client that followed DNS does.
	name := "sentiment." + f.Zone
	gatewayURL := fmt.Sprintf("%s://%s:%d", f.Scheme(), name, fleet.GatewayPort)
	gateways := map[string]*http.Client{}
	for region, eps := range endpoints {
		u, err := url.Parse(eps["sentiment"])
		if err != nil {
			t.Fatal(err)
		}
		host := u.Hostname()
		gtc := tc.Clone()
		gtc.ServerName = name
		gateways[region] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: gtc,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(host, fmt.Sprint(fleet.GatewayPort)))
			}}}
	}
	setVersions := func(t *testing.T, versions []v1.VersionWeight, traffic v1.Traffic) {
		t.Helper()
		im := &v1.InferenceModel{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment"}, im); err != nil {
			t.Fatal(err)
		}
		base := im.DeepCopy()
		im.Spec.Versions, im.Spec.Traffic = versions, traffic
		if err := c.Patch(ctx, im, client.MergeFrom(base)); err != nil {
			t.Fatal(err)
		}
	}
	// served waits until every region's front splits as versions says,
	// each version with weight ready.
	served := func(t *testing.T, versions []v1.VersionWeight) {
		t.Helper()
		testbin.Eventually(t, fmt.Sprintf("every region serving %v", versions), 2*time.Minute, func() bool {
			for _, cp := range f.Members {
				md := &v1.ModelDeployment{}
				if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment"}, md); err != nil || len(md.Status.Versions) != len(versions) {
					return false
				}
				for _, want := range versions {
					i := slices.IndexFunc(md.Status.Versions, func(s v1.VersionStatus) bool { return s.Version == want.Version })
					if i < 0 || md.Status.Versions[i].Weight != want.Weight || md.Status.Versions[i].ReadyReplicas == 0 {
						return false
					}
				}
			}
			return true
		})
	}
	v := func(pairs ...int64) []v1.VersionWeight {
		var out []v1.VersionWeight
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, v1.VersionWeight{Version: pairs[i], Weight: int32(pairs[i+1])})
		}
		return out
	}

	// load offers 40 requests/s through the balancer's front while change
	// runs, and fails the test if one of them fails.
	load := func(t *testing.T, change func()) *loadgen.Report {
		t.Helper()
		ctx, stop := context.WithCancel(ctx)
		var rep *loadgen.Report
		var lerr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			rep, lerr = loadgen.Run(ctx, loadgen.Options{Phases: loadgen.Constant(40, 0)}, func(ctx context.Context) (string, error) {
				code, version, err := ask(ctx, hc, frontURL, nil)
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("status %d", code)
				}
				return version, err
			})
		}()
		time.Sleep(3 * time.Second)
		change()
		time.Sleep(3 * time.Second)
		stop()
		<-done
		if lerr != nil {
			t.Fatal(lerr)
		}
		t.Logf("at 40/s: %s; by version %v", rep, rep.Labels)
		if rep.Failed != 0 || !rep.LoadOffered {
			t.Fatalf("%d of %d requests failed (by version %v; offered: %v %s)", rep.Failed, rep.Sent, rep.Labels, rep.LoadOffered, rep.Shortfall)
		}
		return rep
	}

	t.Run("changing versions loses no request while new replicas start", func(t *testing.T) {
		// The fleet pins sentiment to version 1. Unpinned, every replica
		// serves every version: new replicas start, and version 1's serve
		// until they are ready; pinned again, the other way round.
		served(t, v(1, 100))
		load(t, func() {
			setVersions(t, nil, v1.Traffic{})
			served(t, nil)
		})
		load(t, func() {
			setVersions(t, v(1, 100), v1.Traffic{})
			served(t, v(1, 100))
		})
	})

	t.Run("a canary at 10% gets 10% of 2,000 requests through the front", func(t *testing.T) {
		setVersions(t, v(1, 90, 2, 10), v1.Traffic{})
		served(t, v(1, 90, 2, 10))
		got := map[string]int{}
		for range 2000 {
			code, version, err := ask(ctx, hc, frontURL, nil)
			if err != nil || code != http.StatusOK {
				t.Fatalf("status %d: %v", code, err)
			}
			got[version]++
		}
		t.Logf("versions of 2,000 answers: %v", got)
		if got["2"] < 140 || got["2"] > 260 || got["1"]+got["2"] != 2000 {
			t.Fatalf("canary at 10%% got %v of 2,000 (want 200 ± 60)", got)
		}
	})

	t.Run("A/B assignment is stable per user across 1,000 requests", func(t *testing.T) {
		setVersions(t, v(1, 50, 2, 50), v1.Traffic{SessionAffinity: v1.AffinityHeader, AffinityKey: "X-User"})
		served(t, v(1, 50, 2, 50))
		time.Sleep(2 * time.Second) // the affinity reaches the fronts with the weights
		first := map[string]string{}
		perVersion := map[string]int{}
		for i := range 1000 {
			user := fmt.Sprintf("user-%d", i%100)
			code, version, err := ask(ctx, hc, frontURL, func(r *http.Request) { r.Header.Set("X-User", user) })
			if err != nil || code != http.StatusOK {
				t.Fatalf("status %d: %v", code, err)
			}
			if was, ok := first[user]; ok && was != version {
				t.Fatalf("%s moved from version %s to %s at request %d", user, was, version, i)
			}
			first[user] = version
		}
		for _, version := range first {
			perVersion[version]++
		}
		t.Logf("users per version: %v", perVersion)
		if perVersion["1"] < 25 || perVersion["2"] < 25 {
			t.Fatalf("users per version %v: want about half each", perVersion)
		}
	})

	t.Run("a blue-green switch loses no request", func(t *testing.T) {
		setVersions(t, v(1, 100, 2, 0), v1.Traffic{})
		served(t, v(1, 100, 2, 0))
		rep := load(t, func() {
			setVersions(t, v(1, 0, 2, 100), v1.Traffic{})
			served(t, v(1, 0, 2, 100))
		})
		if rep.Labels["1"] == 0 || rep.Labels["2"] == 0 {
			t.Fatalf("answers by version %v: want version 1 before the switch and 2 after", rep.Labels)
		}
	})

	// Rollouts are judged from what the regions' fronts count: offer each
	// region load of its own, as its users would.
	regionLoad := func(t *testing.T) func() {
		lctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for region, gw := range gateways {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rep, _ := loadgen.Run(lctx, loadgen.Options{Phases: loadgen.Constant(10, 0)}, func(ctx context.Context) (string, error) {
					code, version, err := ask(ctx, gw, gatewayURL, nil)
					return fmt.Sprintf("v%s:%d", version, code), err
				})
				if rep != nil {
					t.Logf("load on %s: %s; answers by version:status %v", region, rep, rep.Labels)
				}
			}()
		}
		return func() { stop(); wg.Wait() }
	}
	rollout := func(t *testing.T, name string, spec v1.ModelRolloutSpec) *v1.ModelRollout {
		t.Helper()
		ro := &v1.ModelRollout{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: spec}
		if err := c.Create(ctx, ro); err != nil {
			t.Fatal(err)
		}
		return ro
	}
	get := func(t *testing.T, name string) *v1.ModelRollout {
		t.Helper()
		ro := &v1.ModelRollout{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, ro); err != nil {
			t.Fatal(err)
		}
		return ro
	}

	t.Run("a good version is promoted region by region", func(t *testing.T) {
		setVersions(t, v(1, 100), v1.Traffic{})
		served(t, v(1, 100))
		stop := regionLoad(t)
		defer stop()
		rollout(t, "to-v2", v1.ModelRolloutSpec{Model: "sentiment", Version: 2, Strategy: v1.StrategyCanary,
			Steps: []v1.RolloutStep{{Weight: 50}}, Bake: metav1.Duration{Duration: 15 * time.Second},
			Waves:    []v1.RolloutWave{{Regions: []v1.RegionName{"eu-west"}}},
			Analysis: v1.RolloutAnalysis{MinRequests: 10}})
		// Watch the order: eu-west reaches version 2 alone before the
		// others take any of it.
		euFirst := false
		testbin.Eventually(t, "the rollout to succeed", 4*time.Minute, func() bool {
			ro := get(t, "to-v2")
			byRegion := map[v1.RegionName]map[int64]int32{}
			for _, tr := range ro.Status.Traffic {
				byRegion[tr.Region] = map[int64]int32{}
				for _, vw := range tr.Versions {
					byRegion[tr.Region][vw.Version] = vw.Weight
				}
			}
			if byRegion["eu-west"][2] == 100 && byRegion["us-east"][2] == 0 && byRegion["ap-south"][2] == 0 {
				euFirst = true
			}
			if ro.Status.Phase == v1.RolloutRolledBack || (ro.Status.Phase == v1.RolloutPaused && !strings.Contains(ro.Status.Message, "cannot judge")) {
				t.Fatalf("rollout %s: %s", ro.Status.Phase, ro.Status.Message)
			}
			return ro.Status.Phase == v1.RolloutSucceeded
		})
		ro := get(t, "to-v2")
		t.Logf("verdicts: %+v", ro.Status.Verdicts)
		if !euFirst {
			t.Errorf("eu-west never served version 2 alone before the other regions")
		}
		passed := 0
		for _, vd := range ro.Status.Verdicts {
			if vd.Result == "Passed" {
				passed++
			}
		}
		if passed < 4 { // eu-west at 50 and 100, then the rest at 50 and 100
			t.Errorf("%d steps passed, want 4: %+v", passed, ro.Status.Verdicts)
		}
		im := &v1.InferenceModel{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment"}, im); err != nil {
			t.Fatal(err)
		}
		if len(im.Spec.Versions) != 1 || im.Spec.Versions[0].Version != 2 {
			t.Fatalf("after the rollout the InferenceModel serves %v, want version 2 alone", im.Spec.Versions)
		}
		served(t, v(2, 100))
	})

	t.Run("a failing version rolls back by itself within its bake", func(t *testing.T) {
		setVersions(t, v(2, 100), v1.Traffic{})
		served(t, v(2, 100))
		stop := regionLoad(t)
		defer stop()
		bake := time.Minute
		rollout(t, "to-v3", v1.ModelRolloutSpec{Model: "sentiment", Version: 3, Strategy: v1.StrategyCanary,
			Steps: []v1.RolloutStep{{Weight: 20}}, Bake: metav1.Duration{Duration: bake},
			Analysis: v1.RolloutAnalysis{MinRequests: 10}})
		var ro *v1.ModelRollout
		testbin.Eventually(t, "the rollout to roll back", 3*time.Minute, func() bool {
			ro = get(t, "to-v3")
			if ro.Status.Phase == v1.RolloutSucceeded {
				t.Fatalf("a failing version was promoted: %+v", ro.Status)
			}
			return ro.Status.Phase == v1.RolloutRolledBack
		})
		t.Logf("rolled back: %s; verdicts %+v", ro.Status.Message, ro.Status.Verdicts)
		last := ro.Status.Verdicts[len(ro.Status.Verdicts)-1]
		if last.Result != "Failed" || !strings.Contains(last.Message, "error rate") {
			t.Fatalf("last verdict %+v: want a failed error rate", last)
		}
		// Within the bake: the step failed before its bake ran out.
		var started time.Time
		var events corev1.EventList
		if err := c.List(ctx, &events, client.InNamespace("default")); err != nil {
			t.Fatal(err)
		}
		reasons := map[string]bool{}
		for _, e := range events.Items {
			if e.InvolvedObject.Name == "to-v3" {
				reasons[e.Reason] = true
				if e.Reason == "Started" {
					started = e.EventTime.Time
				}
			}
		}
		if !reasons["AnalysisFailed"] || !reasons["RolledBack"] {
			t.Errorf("events of the rollout: %v, want AnalysisFailed and RolledBack", reasons)
		}
		if !started.IsZero() && last.Time.Sub(started) > bake+30*time.Second {
			t.Errorf("the failing step was judged %s after the start, past its %s bake", last.Time.Sub(started), bake)
		}
		served(t, v(2, 100))
		im := &v1.InferenceModel{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment"}, im); err != nil {
			t.Fatal(err)
		}
		if len(im.Spec.Versions) != 1 || im.Spec.Versions[0].Version != 2 {
			t.Fatalf("after the rollback the InferenceModel serves %v, want version 2", im.Spec.Versions)
		}
	})

	t.Run("a lost region pauses a rollout and a lost hub leaves the traffic where it was", func(t *testing.T) {
		stop := regionLoad(t)
		defer stop()
		rollout(t, "back-to-v1", v1.ModelRolloutSpec{Model: "sentiment", Version: 1, Strategy: v1.StrategyCanary,
			Steps: []v1.RolloutStep{{Weight: 50}}, Bake: metav1.Duration{Duration: 20 * time.Second},
			Analysis: v1.RolloutAnalysis{MinRequests: 10}})
		testbin.Eventually(t, "the first step to bake", 2*time.Minute, func() bool {
			ro := get(t, "back-to-v1")
			return ro.Status.StepStarted != nil && ro.Status.Step == 0
		})
		if err := f.Partition("ap-south"); err != nil {
			t.Fatal(err)
		}
		testbin.Eventually(t, "the rollout to pause for the lost region", 2*time.Minute, func() bool {
			ro := get(t, "back-to-v1")
			return ro.Status.Phase == v1.RolloutPaused && strings.Contains(ro.Status.Message, "ap-south is unreachable")
		})
		if err := f.Heal("ap-south"); err != nil {
			t.Fatal(err)
		}
		testbin.Eventually(t, "the rollout to go on once the region is back", 2*time.Minute, func() bool {
			ro := get(t, "back-to-v1")
			return ro.Status.Phase == v1.RolloutProgressing && ro.Status.StepStarted != nil
		})
		// The hub goes down mid-step: every region keeps the split it
		// was given, and the rollout finishes when the hub is back.
		served(t, v(1, 50, 2, 50))
		if err := f.KillHub(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(15 * time.Second)
		for region, cp := range f.Members {
			md := &v1.ModelDeployment{}
			if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment"}, md); err != nil {
				t.Fatal(err)
			}
			if len(md.Spec.Versions) != 2 || md.Spec.Versions[0].Weight != 50 {
				t.Errorf("%s, the hub down: versions %v, want the 50/50 split it had", region, md.Spec.Versions)
			}
		}
		if err := f.RestoreHub(); err != nil {
			t.Fatal(err)
		}
		testbin.Eventually(t, "the rollout to succeed after the hub is back", 3*time.Minute, func() bool {
			ro := get(t, "back-to-v1")
			if ro.Status.Phase == v1.RolloutRolledBack {
				t.Fatalf("rolled back: %s", ro.Status.Message)
			}
			return ro.Status.Phase == v1.RolloutSucceeded
		})
		served(t, v(1, 100))
	})

	t.Run("a version whose predictions drift rolls back at the end of its bake", func(t *testing.T) {
		setVersions(t, v(1, 100), v1.Traffic{})
		served(t, v(1, 100))
		stop := regionLoad(t)
		defer stop()
		// Version 4 answers every request well, and always NEGATIVE:
		// neither errors nor latency give it away, its predictions do.
		rollout(t, "to-v4", v1.ModelRolloutSpec{Model: "sentiment", Version: testbin.DriftingVersion, Strategy: v1.StrategyCanary,
			Steps: []v1.RolloutStep{{Weight: 50}}, Bake: metav1.Duration{Duration: 20 * time.Second},
			Analysis: v1.RolloutAnalysis{MinRequests: 10, MaxPredictionShift: "0.2"}})
		var ro *v1.ModelRollout
		testbin.Eventually(t, "the drifting version to roll back", 3*time.Minute, func() bool {
			ro = get(t, "to-v4")
			if ro.Status.Phase == v1.RolloutSucceeded {
				t.Fatalf("a drifting version was promoted: %+v", ro.Status)
			}
			return ro.Status.Phase == v1.RolloutRolledBack
		})
		last := ro.Status.Verdicts[len(ro.Status.Verdicts)-1]
		t.Logf("rolled back: %s", ro.Status.Message)
		if last.Result != "Failed" || !strings.Contains(last.Message, "predictions drifted") {
			t.Fatalf("last verdict %+v: want drifted predictions", last)
		}
		served(t, v(1, 100))
	})
}
