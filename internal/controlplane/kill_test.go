package controlplane

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"meridian.dev/meridian/internal/proc"
)

// Kill takes etcd and the API server down at once: the port refuses
// connections (nothing drained, nothing listening), and Stop still
// returns.
func TestKillCrashesTheAPIServerAndEtcd(t *testing.T) {
	cp := ForTest(t, Options{})
	var nss corev1.NamespaceList
	if err := cp.Client.List(context.Background(), &nss); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cp.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	etcd := "--data-dir=" + cp.env.ControlPlane.Etcd.DataDir
	if len(proc.Matching(etcd)) != 1 {
		t.Fatalf("etcd's process not found by %s", etcd)
	}
	if err := cp.Kill(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(proc.Matching(etcd)) > 0; {
		if time.Now().After(deadline) {
			t.Fatal("etcd survives Kill")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err != nil {
			break
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections after Kill", u.Host)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
