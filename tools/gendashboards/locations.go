package main

import (
	"cmp"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
)

// fleetSource holds fleet.KnownLocations, the regions Meridian places
// without coordinates; the map's fixed lookup is read from it, so both stay
// one table. (Parsed rather than imported: importing internal/fleet would
// build the whole fleet, control plane clients included, to read a map.)
const fleetSource = "internal/fleet/fleet.go"

// location is a region's data centre, in decimal degrees as written there.
type location struct{ region, lat, lon string }

// knownLocations reads KnownLocations from the Go file at path, sorted by
// region.
func knownLocations(path string) ([]location, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var lit *ast.CompositeLit
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok && len(vs.Names) == 1 && vs.Names[0].Name == "KnownLocations" && len(vs.Values) == 1 {
			lit, _ = vs.Values[0].(*ast.CompositeLit)
		}
		return lit == nil
	})
	if lit == nil {
		return nil, fmt.Errorf("%s: no `var KnownLocations = map[string][2]string{...}`", path)
	}
	var locs []location
	for _, e := range lit.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			return nil, fmt.Errorf("%s: KnownLocations: an entry is not key: value", path)
		}
		coords, ok := kv.Value.(*ast.CompositeLit)
		if !ok || len(coords.Elts) != 2 {
			return nil, fmt.Errorf("%s: KnownLocations: want {\"lat\", \"lon\"} for each region", path)
		}
		var s [3]string
		for i, x := range []ast.Expr{kv.Key, coords.Elts[0], coords.Elts[1]} {
			bl, ok := x.(*ast.BasicLit)
			if !ok || bl.Kind != token.STRING {
				return nil, fmt.Errorf("%s: KnownLocations: want string literals", path)
			}
			if s[i], err = strconv.Unquote(bl.Value); err != nil {
				return nil, err
			}
		}
		for _, c := range s[1:] {
			if _, err := strconv.ParseFloat(c, 64); err != nil {
				return nil, fmt.Errorf("%s: KnownLocations[%q]: %q is not a number", path, s[0], c)
			}
		}
		locs = append(locs, location{s[0], s[1], s[2]})
	}
	slices.SortFunc(locs, func(a, b location) int { return cmp.Compare(a.region, b.region) })
	return locs, nil
}
