package fleet

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/proc"
)

// A local region's agent runs as its own process, `meridian agent`, with
// its replicas as its children, as on a real site: a drill can then crash
// the region (SIGKILL of the whole tree, no drain) while the hub, the
// balancer and the other regions run on in this process.

// GatewayPort is the port every local region serves its models on, at its
// own address (127.0.1.<n>): where clients that follow DNS answers
// connect.
const GatewayPort = 8000

// agentProc is one region's running agent.
type agentProc struct {
	region string
	cmd    *exec.Cmd
	log    string // its log file
	done   chan struct{}

	mu       sync.Mutex
	expected bool // stopped or killed on purpose
}

// startAgent starts region r's agent against its control plane, its fronts
// and gateway on host, and returns once the process runs.
func (f *Fleet) startAgent(r Region, cp *controlplane.ControlPlane, host string) (*agentProc, error) {
	args := []string{"agent",
		"--kubeconfig", cp.Kubeconfig, "--cluster-name", r.Name, "--region", r.Name, "--zone", r.Name + "-a",
		"--latitude", r.Latitude, "--longitude", r.Longitude, "--runtime", string(f.opts.Runtime),
		"--metrics-addr", "", "--log-format", "json", "--log-level", "info",
		"--report-period", f.timing.AgentReport.String(),
		"--membership", cmp.Or(f.opts.Membership, "push"),
	}
	args = append(args, f.gossipArgs(host)...)
	if f.kubernetesRuntime() {
		args = append(args, "--image", f.images.Meridian, "--placeholder-image", f.images.Pause,
			"--metrics-api-addr", f.metricsAPIListen(r.Name))
	} else {
		args = append(args, "--front-host", host, "--gateway-port", fmt.Sprint(GatewayPort),
			"--models", f.opts.ModelRepository, "--capacity-cpu", "4", "--capacity-memory", "8Gi")
		args = append(args, f.secureAgentArgs(r.Name)...)
		for i := 0; i < len(f.opts.ServeArgs); i++ {
			// The agent finds ONNX Runtime for itself and its replicas.
			if a := f.opts.ServeArgs[i]; a == "--ort-lib" && i+1 < len(f.opts.ServeArgs) {
				args = append(args, "--ort-lib", f.opts.ServeArgs[i+1])
				i++
			} else {
				args = append(args, "--serve-arg="+a)
			}
		}
	}
	dir := filepath.Join(f.opts.StateDir, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "agent-"+r.Name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(f.opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Never outlive the fleet's process, even one that was killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting region %s's agent (%s): %w", r.Name, f.opts.Binary, err)
	}
	a := &agentProc{region: r.Name, cmd: cmd, log: logPath, done: make(chan struct{})}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		err := cmd.Wait()
		_ = logFile.Close()
		close(a.done)
		a.mu.Lock()
		expected := a.expected
		a.mu.Unlock()
		if !expected {
			f.errs <- fmt.Errorf("region %s's agent exited (%w); its log: %s", r.Name, err, lastLines(logPath, 5))
		}
	}()
	return a, nil
}

// kill crashes the agent and every replica it started, at once.
func (a *agentProc) kill() error {
	a.mu.Lock()
	a.expected = true
	a.mu.Unlock()
	return proc.Kill(proc.Tree(a.cmd.Process.Pid))
}

// stop asks the agent to stop (SIGTERM: it stops its replicas) and waits
// up to grace, then kills what is left.
func (a *agentProc) stop(grace time.Duration) {
	a.mu.Lock()
	a.expected = true
	a.mu.Unlock()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(grace):
		_ = a.kill()
		<-a.done
	}
}

// lastLines is the end of a log file, for an error message.
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return path
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return path + ": " + strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// runAgent starts region r's agent and keeps it for faults and Stop.
func (f *Fleet) runAgent(_ context.Context, r Region, cp *controlplane.ControlPlane, host string) error {
	a, err := f.startAgent(r, cp, host)
	if err != nil {
		return err
	}
	f.faultMu.Lock()
	f.agents[r.Name] = a
	f.faultMu.Unlock()
	return nil
}
