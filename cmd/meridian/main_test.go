package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func run(args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// Every flag of every command has a help text that says something.
func TestEveryFlagIsExplained(t *testing.T) {
	for _, c := range newRoot().Commands() {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if len(f.Usage) < 15 {
				t.Errorf("%s --%s: help %q explains nothing", c.Name(), f.Name, f.Usage)
			}
		})
		if c.Name() != "help" && c.Name() != "completion" && len(c.Long) < 80 && c.Name() != "version" {
			t.Errorf("%s has no long description", c.Name())
		}
	}
}

func TestVersion(t *testing.T) {
	out, err := run("version")
	if err != nil || !strings.HasPrefix(out, "meridian ") {
		t.Fatalf("version: %q %v", out, err)
	}
}

func TestServeSaysHowToGetONNXRuntime(t *testing.T) {
	t.Setenv("MERIDIAN_ORT_LIB", "")
	t.Chdir(t.TempDir())
	_, err := run("serve", "--ort-lib", "/nonexistent/libonnxruntime.so.1")
	if err == nil || !strings.Contains(err.Error(), "ONNX Runtime library") {
		t.Fatalf("missing library: %v", err)
	}
	_, err = run("serve")
	if err == nil || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("no library anywhere: %v", err)
	}
}

func TestAgentRejectsBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"agent"}, `required flag(s) "region"`},
		{[]string{"agent", "--region", "eu-west", "--capacity-gpu", "H100"}, "PRODUCT=COUNT"},
		{[]string{"agent", "--region", "eu-west", "--node-group", "x"}, "NAME=PRODUCT:COUNT"},
		{[]string{"agent", "--region", "eu-west", "--capacity-cpu", "lots"}, "--capacity-cpu"},
		{[]string{"serve", "--log-level", "loud"}, "--log-level"},
	} {
		if _, err := run(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %q", c.args, err, c.want)
		}
	}
}
