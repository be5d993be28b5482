// Package terraform_test checks the OpenTofu modules under terraform/ with
// the OpenTofu and providers `make tofu` builds into .cache/tofu: tofu fmt,
// tofu validate and tofu test (plan-mode runs with the real providers and
// the real chart, which helm_release lints while planning) for every
// module and the example, offline, from the filesystem mirror; and an
// apply and destroy of the example onto a local fleet (apply_test.go).
package terraform_test

import (
	"bufio"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"meridian.dev/meridian/internal/testbin"
)

// tofu runs OpenTofu on a copy of terraform/ and charts/ (init writes into
// a module's directory; the checkout stays clean).
type tofu struct {
	bin, rc, root string
}

func newTofu(t *testing.T) *tofu {
	t.Helper()
	tf := &tofu{
		bin:  testbin.Cached(t, "tofu/bin/tofu", "tofu"),
		rc:   testbin.Cached(t, "tofu/tofurc", "tofu"),
		root: t.TempDir(),
	}
	for _, dir := range []string{"terraform", "charts"} {
		if err := copyTree(filepath.Join("..", dir), filepath.Join(tf.root, dir)); err != nil {
			t.Fatal(err)
		}
	}
	return tf
}

// run runs tofu in dir (relative to terraform/) with stdin empty and
// returns what it printed, failing the test when its exit status is not
// wantOK's.
func (tf *tofu) run(t *testing.T, dir string, wantOK bool, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tf.bin, args...)
	// No terminal: a question tofu asks reads the empty stdin and ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = filepath.Join(tf.root, "terraform", dir)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(tf.root, "home"),
		"TF_CLI_CONFIG_FILE=" + tf.rc,
		"TF_IN_AUTOMATION=1",
		"NO_COLOR=1",
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("tofu %s in %s: did not end in time\n%s", strings.Join(args, " "), dir, out)
	}
	if (err == nil) != wantOK {
		t.Fatalf("tofu %s in %s: %v (want success %v)\n%s", strings.Join(args, " "), dir, err, wantOK, out)
	}
	return string(out)
}

// countRuns counts the run blocks of the .tftest.hcl files in dir.
func countRuns(t *testing.T, dir string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.tftest.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(regexp.MustCompile(`(?m)^run "`).FindAll(b, -1))
	}
	return n
}

// copyTree copies the directory src to dst, keeping symbolic links (the
// modules share files through them).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, to)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}

// Every module and the example: init from the mirror, validate, and every
// run block of its tests passes.
func TestModules(t *testing.T) {
	for _, dir := range []string{"modules/hub", "modules/member", "modules/dns-delegation", "examples/three-regions"} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			tf := newTofu(t)
			tf.run(t, dir, true, "init", "-backend=false", "-input=false", "-no-color")
			if out := tf.run(t, dir, true, "validate", "-json"); !strings.Contains(out, `"valid": true`) {
				t.Fatalf("tofu validate in %s:\n%s", dir, out)
			}
			runs := countRuns(t, filepath.Join(dir, "tests"))
			if runs == 0 {
				t.Fatalf("%s has no tests/*.tftest.hcl run blocks", dir)
			}
			out := tf.run(t, dir, true, "test", "-no-color")
			if want := regexp.MustCompile(`Success! (\d+) passed, 0 failed`).FindStringSubmatch(out); want == nil || want[1] != strconv.Itoa(runs) {
				t.Fatalf("tofu test in %s: want %d runs passed:\n%s", dir, runs, out)
			}
		})
	}
}

// The DNS variants' providers are not in the mirror (the Go module proxy
// serves none OpenTofu can run), so they cannot be validated: init loads
// each variant and its call of the dns-delegation module and stops at the
// provider alone, and tofu providers lists that provider's requirement.
func TestDNSVariantsLoad(t *testing.T) {
	tf := newTofu(t)
	for variant, provider := range map[string]string{
		"route53":          "hashicorp/aws",
		"cloudflare":       "cloudflare/cloudflare",
		"google-cloud-dns": "hashicorp/google",
	} {
		dir := "modules/dns-delegation/" + variant
		out := tf.run(t, dir, false, "init", "-backend=false", "-input=false", "-no-color")
		if flat := strings.Join(strings.Fields(out), " "); strings.Count(flat, "Error: ") != 1 || !strings.Contains(flat, "/"+provider+" was not found") {
			t.Errorf("init of %s failed for more than its provider %s:\n%s", dir, provider, out)
		}
		out = tf.run(t, dir, true, "providers", "-no-color")
		if !strings.Contains(out, "/"+provider+"] >= ") || !strings.Contains(out, "module.delegation") {
			t.Errorf("tofu providers in %s does not list %s and module.delegation:\n%s", dir, provider, out)
		}
	}
}

// tofu plan without a required variable names it with its description
// (asked for, as on a terminal) and, without input, says which is missing.
func TestMissingVariableNamed(t *testing.T) {
	tf := newTofu(t)
	dir := "examples/three-regions"
	tf.run(t, dir, true, "init", "-backend=false", "-input=false", "-no-color")
	out := tf.run(t, dir, false, "plan", "-no-color", "-input=true")
	if !strings.Contains(out, "var.hub_context") || !strings.Contains(out, "Kubeconfig context of the hub cluster") {
		t.Errorf("plan asked without naming var.hub_context and its description:\n%s", out)
	}
	out = tf.run(t, dir, false, "plan", "-no-color", "-input=false")
	if !strings.Contains(out, `input variable "hub_context" is not set`) {
		t.Errorf("plan without input does not name the missing variable:\n%s", out)
	}
}

// A value the chart's schema refuses fails the plan (helm_release lints
// the chart with the values), naming the value.
func TestPlanRefusesBadChartValues(t *testing.T) {
	tf := newTofu(t)
	dir := "modules/hub"
	tf.run(t, dir, true, "init", "-backend=false", "-input=false", "-no-color")
	out := tf.run(t, dir, false, "plan", "-no-color", "-input=false",
		"-var", `image={repository="registry.example/meridian"}`,
		"-var", "balancer_zone=infer.example.com",
		"-var", `values=["hub: {replicas: two}"]`)
	if !strings.Contains(out, "replicas") {
		t.Errorf("plan with hub.replicas=two does not name it:\n%s", out)
	}
}

// The modules are formatted as tofu fmt writes them; this parses the DNS
// variants too, whose providers cannot be installed here.
func TestFormat(t *testing.T) {
	tf := newTofu(t)
	if out := tf.run(t, ".", true, "fmt", "-check", "-recursive", "-diff", "-no-color"); out != "" {
		t.Errorf("not formatted (run tofu fmt -recursive terraform):\n%s", out)
	}
}

// Every variable has a description and a type: tofu shows the
// description when it asks for a missing one.
func TestVariablesDescribed(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".tf") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		var name string
		var seen map[string]bool
		for s := bufio.NewScanner(f); s.Scan(); {
			line := s.Text()
			switch {
			case strings.HasPrefix(line, "variable "):
				name, seen = strings.Fields(line)[1], map[string]bool{}
			case name != "" && line == "}":
				if !seen["description"] || !seen["type"] {
					t.Errorf("%s: variable %s lacks a description or a type", path, name)
				}
				name = ""
			case name != "":
				if f := strings.Fields(line); len(f) > 1 && f[1] == "=" {
					seen[f[0]] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
