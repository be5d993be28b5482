package fleetpage

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Drill is one drill report (internal/drill's JSON, as meridian drill
// writes it): what the clients saw, bin by bin, around the fault.
type Drill struct {
	// File is the report's file name in the directory.
	File string `json:"file"`
	// Written is the report's modification time.
	Written time.Time `json:"written"`
	Drill   string    `json:"drill"`
	Region  string    `json:"region"`
	Fault   string    `json:"fault,omitempty"`
	Timing  string    `json:"timing,omitempty"`
	// BinSeconds is the width of one bin of the timelines.
	BinSeconds float64 `json:"binSeconds"`
	// FaultAt and HealAt are the bins of the fault and the heal (0: none).
	FaultAt int `json:"faultAt"`
	HealAt  int `json:"healAt,omitempty"`
	// Series are the timelines, one per kind of client.
	Series []Series `json:"series"`
	// Figures are the report's headline durations, in seconds after the
	// fault (or the heal), by name; absent when never reached.
	Figures map[string]float64 `json:"figures,omitempty"`
}

// Series is one kind of client's timeline: requests ended OK and failed
// per bin.
type Series struct {
	Kind   string  `json:"kind"`
	OK     []int64 `json:"ok"`
	Failed []int64 `json:"failed"`
}

// drillBinSeconds is internal/drill's bin width (250ms).
const drillBinSeconds = 0.25

// maxDrills and maxDrillBytes bound what a directory contributes.
const (
	maxDrills     = 20
	maxDrillBytes = 8 << 20
)

// report is the part of internal/drill.Result the page reads (decoded here
// rather than imported: internal/drill pulls in the whole local fleet).
type report struct {
	Drill        string   `json:"drill"`
	Region       string   `json:"region"`
	Fault        string   `json:"fault"`
	Timing       string   `json:"timing"`
	FaultAt      int      `json:"faultAtBin"`
	HealAt       int      `json:"healAtBin"`
	Detected     *float64 `json:"detectedAfter"`
	DNSResteered *float64 `json:"dnsResteeredAfter"`
	Replaced     *float64 `json:"capacityReplacedAfter"`
	Rejoined     *float64 `json:"rejoinedAfterHeal"`
	DNSReturned  *float64 `json:"dnsReturnedAfterHeal"`
	Front        clients  `json:"frontClients"`
	DNS          clients  `json:"dnsClients"`
}

type clients struct {
	Kind     string `json:"kind"`
	Timeline []struct {
		OK     int64 `json:"ok"`
		Failed int64 `json:"failed"`
	} `json:"timeline"`
}

// ReadDrills reads the drill reports (*.json) of dir, newest first, at
// most 20; files that are not drill reports are skipped, and those that
// cannot be read are problems. A missing directory has none.
func ReadDrills(dir string) ([]Drill, []string) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, []string{"drill reports: " + err.Error()}
	}
	var out []Drill
	var problems []string
	for _, p := range paths {
		d, ok, err := readDrill(p)
		if err != nil {
			problems = append(problems, fmt.Sprintf("drill report %s: %v", filepath.Base(p), err))
			continue
		}
		if ok {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b Drill) int { return cmp.Or(b.Written.Compare(a.Written), cmp.Compare(a.File, b.File)) })
	if len(out) > maxDrills {
		out = out[:maxDrills]
	}
	return out, problems
}

func readDrill(path string) (Drill, bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Drill{}, false, err
	}
	if !fi.Mode().IsRegular() {
		return Drill{}, false, nil
	}
	if fi.Size() > maxDrillBytes {
		return Drill{}, false, fmt.Errorf("%d bytes, more than %d", fi.Size(), maxDrillBytes)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Drill{}, false, err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return Drill{}, false, err
	}
	if r.Drill == "" || (len(r.Front.Timeline) == 0 && len(r.DNS.Timeline) == 0) {
		return Drill{}, false, nil // some other JSON
	}
	d := Drill{
		File: filepath.Base(path), Written: fi.ModTime(), Drill: r.Drill, Region: r.Region, Fault: r.Fault, Timing: r.Timing,
		BinSeconds: drillBinSeconds, FaultAt: r.FaultAt, HealAt: r.HealAt, Figures: map[string]float64{},
	}
	for _, c := range []clients{r.Front, r.DNS} {
		if len(c.Timeline) == 0 {
			continue
		}
		s := Series{Kind: strings.TrimSpace(c.Kind), OK: make([]int64, len(c.Timeline)), Failed: make([]int64, len(c.Timeline))}
		for i, b := range c.Timeline {
			s.OK[i], s.Failed[i] = b.OK, b.Failed
		}
		d.Series = append(d.Series, s)
	}
	for name, v := range map[string]*float64{
		"detected": r.Detected, "dnsResteered": r.DNSResteered, "capacityReplaced": r.Replaced,
		"rejoinedAfterHeal": r.Rejoined, "dnsReturnedAfterHeal": r.DNSReturned,
	} {
		if v != nil {
			d.Figures[name] = *v
		}
	}
	return d, true, nil
}
