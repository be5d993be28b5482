package modelsource_test

import (
	"strings"
	"testing"

	"meridian.dev/meridian/internal/modelsource"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	allow, err := modelsource.Parse("--allowed-model-sources", []string{"/srv/models", "file:///opt/meridian/models", "/data/m"})
	if err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]bool{
		"":                            true, // the agent's default
		"/srv/models":                 true,
		"/srv/models/":                true,
		"/srv/models/team-a":          true,
		"/opt/meridian/models/v2":     true,
		"/data/m":                     true,
		"/srv/models-evil":            false, // a sibling sharing the prefix
		"/srv/models/../../etc":       false,
		"/srv/models/./x":             false,
		"/etc":                        false,
		"srv/models":                  false,
		"/home/user/.ssh":             false,
		"/srv/modelsx/../models/team": false,
	} {
		err := allow.Check(repo)
		if (err == nil) != want {
			t.Errorf("Check(%q) = %v, want allowed %v", repo, err, want)
		}
		if err != nil && !strings.Contains(err.Error(), "--allowed-model-sources") && !strings.Contains(err.Error(), "segments") {
			t.Errorf("Check(%q): %q does not say what to do", repo, err)
		}
	}
	if err := modelsource.AllowList(nil).Check("/srv/models"); err == nil || !strings.Contains(err.Error(), "no model sources are allowed") {
		t.Errorf("an empty allow-list allowed an explicit repository: %v", err)
	}
	for _, bad := range []string{"models", "/srv/../etc", "s3://bucket/models", "/srv/models/"} {
		if _, err := modelsource.Parse("--allowed-model-sources", []string{bad}); err == nil {
			t.Errorf("Parse accepted source %q", bad)
		}
	}
}
