package charts_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"meridian.dev/meridian/internal/testbin"
)

var meridian string

func TestMain(m *testing.M) { testbin.Main(m, &meridian) }

// The real balancer, started with exactly the arguments the chart renders
// for glb-secure and its Secrets laid out as the kubelet mounts them
// (timestamped directory, ..data symlink, a link per key), serves what
// the values promise: HTTPS with the front's Secret, the door with the
// auth Secret's keys, tenants and key set and the values' issuer and
// audience, a zone signed with the DNSSEC Secret's two keys; and a
// certificate renewed in the Secret is served without a restart.
func TestRenderedBalancerServes(t *testing.T) {
	t.Parallel()
	objs, _, err := render(t)
	if err != nil {
		t.Fatal(err)
	}
	pod := glbPod(t, objs)
	root := t.TempDir()
	mounts := mountDirs(t, root, pod)
	work := t.TempDir()

	ca := filepath.Join(work, "ca")
	run(t, "ca", "init", "--dir", ca)
	front := issue(t, ca, work, "--dns", "glb.example.com")
	upstream := issue(t, ca, work, "--uri", "spiffe://example.com/glb", "--usage", "client")
	ksk, zsk := filepath.Join(work, "ksk"), filepath.Join(work, "zsk")
	for _, d := range []string{ksk, zsk} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "glb", "dnssec-keygen", "--zone", "infer.example.com", "--dir", ksk)
	run(t, "glb", "dnssec-keygen", "--zone", "infer.example.com", "--dir", zsk, "--zsk")
	jwtKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const apiKey = "acme-key-4f1c2a9e7b3d"
	secrets := map[string]map[string][]byte{
		"glb-front-tls":    front,
		"glb-upstream-tls": upstream,
		"glb-auth": {
			"api-keys":     []byte("acme " + apiKey + "\n"),
			"tenants.yaml": []byte("tenants:\n  acme: {rate: 100, models: [sentiment]}\n"),
			"jwks.json":    jwks(t, &jwtKey.PublicKey),
		},
		"meridian-dnssec": {},
	}
	for name, dir := range map[string]string{"ksk": ksk, "zsk": zsk} {
		files, _ := filepath.Glob(filepath.Join(dir, "K*"))
		for _, f := range files {
			secrets["meridian-dnssec"][name+filepath.Ext(f)] = read(t, f)
		}
	}
	for secret, dir := range mounts {
		data, ok := secrets[secret]
		if !ok {
			continue // the gossip keyring: gossip is not started here
		}
		mountSecret(t, dir, data, 1)
	}

	dnsAddr, httpAddr := freeAddr(t), freeAddr(t)
	args := kubeletArgs(pod.Containers[0], root)
	args = append(args, "--dns-listen="+dnsAddr, "--http-listen="+httpAddr, "--metrics-addr=",
		"--state-file="+filepath.Join(work, "snapshot.json"), "--kubeconfig="+unreachableKubeconfig(t, work))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, meridian, args...)
	var logs testbin.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		t.Logf("the balancer stopped: %v", <-exited)
		if t.Failed() {
			t.Logf("meridian %s\n%s", strings.Join(args, " "), logs.String())
		}
	})
	running := func() {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the balancer refused the chart's arguments: %v", err)
		default:
		}
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(front["ca.crt"])
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "glb.example.com"}}}
	url := "https://" + httpAddr + "/v2/models/%s/infer"
	status := func(model, credential string) int {
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf(url, model), strings.NewReader("{}"))
		if credential != "" {
			req.Header.Set("Authorization", "Bearer "+credential)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	testbin.Eventually(t, "the front answering HTTPS with the Secret's certificate, and 401 without credentials", time.Minute, func() bool {
		running()
		return status("sentiment", "") == http.StatusUnauthorized
	})
	if got := servedSerial(t, httpAddr); got.Cmp(serial(t, front["tls.crt"])) != 0 {
		t.Errorf("front serves certificate %x, want the Secret's", got)
	}
	if resp, err := http.Get("http://" + httpAddr + "/v2/models/sentiment/infer"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the front: %d, want 400 (HTTPS only)", resp.StatusCode)
		}
	}
	token := func(aud string) string { return signJWT(t, jwtKey, "https://idp.example.com/", aud, "acme") }
	for _, c := range []struct {
		what, model, credential string
		refused                 int
	}{
		{"the Secret's API key", "sentiment", apiKey, 0},
		{"a model the tenants file does not give the tenant", "textdir", apiKey, http.StatusForbidden},
		{"a key not in the Secret", "sentiment", "acme-key-guessed", http.StatusUnauthorized},
		{"a JWT of the values' issuer and audience", "sentiment", token("inference"), 0},
		{"a JWT for another audience", "sentiment", token("billing"), http.StatusUnauthorized},
	} {
		got := status(c.model, c.credential)
		if refusedByDoor := got == http.StatusUnauthorized || got == http.StatusForbidden; (c.refused == 0 && refusedByDoor) || (c.refused != 0 && got != c.refused) {
			t.Errorf("%s: %d, want %s", c.what, got, map[bool]string{true: "passed by the door (no cluster serves it yet)", false: fmt.Sprint(c.refused)}[c.refused == 0])
		}
	}

	checkSigned(t, dnsAddr, secrets["meridian-dnssec"])

	// cert-manager renews: the kubelet swaps ..data; the pod serves the
	// new certificate without a restart.
	renewed := issue(t, ca, work, "--dns", "glb.example.com")
	mountSecret(t, mounts["glb-front-tls"], renewed, 2)
	testbin.Eventually(t, "the renewed certificate served", time.Minute, func() bool {
		return servedSerial(t, httpAddr).Cmp(serial(t, renewed["tls.crt"])) == 0
	})
	running()
}

// mountDirs maps each Secret volume of pod to where the test mounts it:
// its container mountPath with /etc/meridian replaced by root.
func mountDirs(t *testing.T, root string, pod *corev1.PodSpec) map[string]string {
	t.Helper()
	paths := map[string]string{}
	for _, m := range pod.Containers[0].VolumeMounts {
		paths[m.Name] = m.MountPath
	}
	out := map[string]string{}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			rel, ok := strings.CutPrefix(paths[v.Name], "/etc/meridian/")
			if !ok {
				t.Fatalf("Secret volume %s mounted at %q, not under /etc/meridian", v.Name, paths[v.Name])
			}
			out[v.Secret.SecretName] = filepath.Join(root, rel)
		}
	}
	return out
}

// kubeletArgs is the container's command line as the kubelet runs it
// ($(POD_INDEX) expanded for replica 0), its /etc/meridian under root, and
// without gossip, which joins a pool this test does not have.
func kubeletArgs(c corev1.Container, root string) []string {
	var out []string
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--gossip-") {
			continue
		}
		a = strings.ReplaceAll(a, "$(POD_INDEX)", "0")
		out = append(out, strings.Replace(a, "=/etc/meridian/", "="+root+"/", 1))
	}
	return out
}

// mountSecret writes data into dir as the kubelet's atomic writer does:
// the files in a new timestamped directory, ..data switched to it by a
// rename, a symlink per key through ..data, the previous version removed.
func mountSecret(t *testing.T, dir string, data map[string][]byte, version int) {
	t.Helper()
	ts := fmt.Sprintf("..2026_12_06_00_00_%02d.%d", version, version)
	if err := os.MkdirAll(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, ts, k), v, 0o440); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for k := range data {
		if err := os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	if old != "" {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
}
