//go:build dnsv2

package dns

import (
	"errors"
	"time"
)

// The dnsv2 build, kept to measure the library side by side, does not
// sign: DNSSEC needs the default (v1) build.

type signer struct{}

var errNoDNSSEC = errors.New("dns: DNSSEC signing needs the default build (without the dnsv2 tag)")

func newSigner(cfg DNSSEC, _ string, _ uint32) (*signer, error) {
	if len(cfg.KeyFiles) > 0 {
		return nil, errNoDNSSEC
	}
	return nil, nil
}

// The response's DNSSEC methods are never called: no signer exists.

func (r *response) currentRcode() int                        { return r.rcode }
func (r *response) addDNSKEY(*signer)                        {}
func (r *response) setCompactOK()                            {}
func (r *response) addNSEC(string, string, []uint16, uint32) {}
func (r *response) sign(*signer, time.Time) (int, int, error) {
	return 0, 0, errNoDNSSEC
}

// GenerateKey needs the default build.
func GenerateKey(string, string, bool) (string, string, string, error) {
	return "", "", "", errNoDNSSEC
}
