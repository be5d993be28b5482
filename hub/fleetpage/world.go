package fleetpage

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// The map is an equirectangular projection of latitudes 80°N to 60°S
// (where the fleet's regions can be), 1000 units wide.
const (
	mapWidth  = 1000.0
	mapTop    = 80.0
	mapBottom = -60.0
	mapScale  = mapWidth / 360
	mapHeight = (mapTop - mapBottom) * mapScale
)

// project maps a longitude and latitude onto the map.
func project(lon, lat float64) (x, y float64) {
	return (lon + 180) * mapScale, (mapTop - lat) * mapScale
}

// landPaths are the SVG paths of the land outlines of assets/world.txt.
func landPaths() []string {
	f, err := assets.Open("assets/world.txt")
	if err != nil {
		panic(err)
	}
	defer func() { _ = f.Close() }()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		var b strings.Builder
		for i, pt := range fields[1:] {
			lonS, latS, ok := strings.Cut(pt, ",")
			lon, err1 := strconv.ParseFloat(lonS, 64)
			lat, err2 := strconv.ParseFloat(latS, 64)
			if !ok || err1 != nil || err2 != nil {
				panic(fmt.Sprintf("assets/world.txt:%d: bad point %q", n, pt))
			}
			x, y := project(lon, lat)
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&b, "%s%.1f %.1f", cmd, x, y)
		}
		b.WriteString("Z")
		out = append(out, b.String())
	}
	if err := sc.Err(); err != nil {
		panic(err)
	}
	return out
}

// gridPaths are the meridians and parallels every 30°.
func gridPaths() []string {
	var out []string
	for lon := -150.0; lon < 180; lon += 30 {
		x, _ := project(lon, 0)
		out = append(out, fmt.Sprintf("M%.1f 0V%.1f", x, mapHeight))
	}
	for lat := 60.0; lat > mapBottom; lat -= 30 {
		_, y := project(0, lat)
		out = append(out, fmt.Sprintf("M0 %.1fH%.0f", y, mapWidth))
	}
	return out
}
