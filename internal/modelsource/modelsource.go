// Package modelsource decides which model repositories an InferenceModel
// may name (spec.model.repository). A repository is a directory the
// agent's replicas load and run models from, so naming any directory on a
// member's hosts would let whoever writes InferenceModels run whatever
// lies there; the hub places, and the agent loads, only repositories
// under the directories the operator allows. The empty repository (the
// agent's own --models) is always allowed.
package modelsource

import (
	"fmt"
	"path"
	"strings"
)

// AllowList holds the allowed sources: absolute directories, a repository
// being allowed when it is one of them or lies below one. A source may be
// written as a file URL ("file:///srv/models"). Empty allows only the
// agent's default repository.
type AllowList []string

// Parse checks and normalizes sources, as given to a flag.
func Parse(flag string, sources []string) (AllowList, error) {
	out := make(AllowList, 0, len(sources))
	for _, s := range sources {
		dir := strings.TrimPrefix(s, "file://")
		if !path.IsAbs(dir) || dir != path.Clean(dir) {
			return nil, fmt.Errorf("%s %q: want an absolute, clean directory such as /srv/models or file:///srv/models", flag, s)
		}
		out = append(out, dir)
	}
	return out, nil
}

// Check returns why repo may not be loaded, or nil.
func (a AllowList) Check(repo string) error {
	if repo == "" {
		return nil
	}
	if !path.IsAbs(repo) || hasDotSegment(repo) {
		return fmt.Errorf("model repository %q is not an absolute directory path without . or .. segments", repo)
	}
	clean := path.Clean(repo)
	for _, dir := range a {
		if clean == dir || strings.HasPrefix(clean, strings.TrimSuffix(dir, "/")+"/") {
			return nil
		}
	}
	if len(a) == 0 {
		return fmt.Errorf("model repository %q is not allowed: no model sources are allowed but the agent's default repository (leave spec.model.repository empty, or add its directory to --allowed-model-sources)", repo)
	}
	return fmt.Errorf("model repository %q is not under an allowed model source (%s); add its directory to --allowed-model-sources", repo, strings.Join(a, ", "))
}

func hasDotSegment(p string) bool {
	for s := range strings.SplitSeq(p, "/") {
		if s == "." || s == ".." {
			return true
		}
	}
	return false
}
