package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// exportDirs hold the code of every component that exports metrics.
var exportDirs = []string{"agent", "glb", "gossip", "hub", "inference", "internal", "cmd"}

// metric is what the code declares of one exported metric.
type metric struct {
	histogram bool
	labels    map[string]bool
}

// exportedMetrics reads the meridian_* metrics Meridian's code declares,
// from its non-test Go files: each prometheus.New* call whose options
// name one (with the variable labels after them and the ConstLabels in
// them), and each prometheus.NewDesc.
func exportedMetrics(t *testing.T) map[string]metric {
	t.Helper()
	found := map[string]metric{}
	for _, dir := range exportDirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			declared(f, found)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(found) < 40 {
		t.Fatalf("only %d meridian_* metrics declared in %v; did the code move?", len(found), exportDirs)
	}
	return found
}

// declared adds the metrics f declares to found.
func declared(f *ast.File, found map[string]metric) {
	for _, decl := range f.Decls {
		vars := map[string][]string{} // label lists and Labels maps by variable, per function
		ast.Inspect(decl, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.AssignStmt:
				for i, lhs := range n.Lhs {
					if id, ok := lhs.(*ast.Ident); ok && i < len(n.Rhs) {
						vars[id.Name] = strs(n.Rhs[i], vars)
					}
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || !isIdent(sel.X, "prometheus") || len(n.Args) == 0 {
					return true
				}
				if sel.Sel.Name == "NewDesc" && len(n.Args) >= 3 {
					if name := lit(n.Args[0]); strings.HasPrefix(name, "meridian_") {
						found[name] = metric{labels: set(strs(n.Args[2], vars))}
					}
					return true
				}
				opts, ok := n.Args[0].(*ast.CompositeLit)
				if !ok || !strings.HasPrefix(sel.Sel.Name, "New") {
					return true
				}
				m := metric{histogram: strings.HasPrefix(sel.Sel.Name, "NewHistogram"), labels: map[string]bool{}}
				name := ""
				for _, e := range opts.Elts {
					kv, ok := e.(*ast.KeyValueExpr)
					switch {
					case !ok:
					case isIdent(kv.Key, "Name"):
						name = lit(kv.Value)
					case isIdent(kv.Key, "ConstLabels"):
						m.labels = set(strs(kv.Value, vars))
					}
				}
				if len(n.Args) > 1 {
					for l := range set(strs(n.Args[1], vars)) {
						m.labels[l] = true
					}
				}
				if strings.HasPrefix(name, "meridian_") {
					found[name] = m
				}
			}
			return true
		})
	}
}

// strs evaluates a label list: a []string or prometheus.Labels literal
// (its keys), a variable holding one, or append(list, "label"...).
func strs(e ast.Expr, vars map[string][]string) []string {
	switch e := e.(type) {
	case *ast.Ident:
		return vars[e.Name]
	case *ast.CompositeLit:
		var out []string
		for _, el := range e.Elts {
			if kv, ok := el.(*ast.KeyValueExpr); ok {
				el = kv.Key
			}
			out = append(out, lit(el))
		}
		return out
	case *ast.CallExpr:
		if isIdent(e.Fun, "append") && len(e.Args) > 0 {
			out := append([]string(nil), strs(e.Args[0], vars)...)
			for _, a := range e.Args[1:] {
				out = append(out, lit(a))
			}
			return out
		}
	}
	return nil
}

func lit(e ast.Expr) string {
	if bl, ok := e.(*ast.BasicLit); ok && bl.Kind == token.STRING {
		s, _ := strconv.Unquote(bl.Value)
		return s
	}
	return ""
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

func set(ss []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range ss {
		if s != "" {
			m[s] = true
		}
	}
	return m
}
