// Package hostip finds an address of this host that an API server on it,
// or beside it, can dial: API servers refuse loopback endpoints for the
// APIServices and Services that point at local processes.
package hostip

import (
	"errors"
	"net"
)

// IPv4 returns the first global-unicast IPv4 address of this host's
// interfaces that are up.
func IPv4() (net.IP, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.To4(), nil
			}
		}
	}
	return nil, errors.New("no global-unicast IPv4 address on any interface")
}
