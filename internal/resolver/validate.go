package resolver

import "strings"

// DNSSEC validation, for tests of a signed zone: with Options.TrustAnchors
// Unbound runs its validator between the subnet cache and the iterator,
// trusts exactly the anchors given (no root key: nothing else is
// reachable), and so answers with AD set what validates from them, and
// SERVFAIL what is bogus.

// modules is Unbound's module-config.
func modules(o Options) string {
	if len(o.TrustAnchors) == 0 {
		return "subnetcache iterator"
	}
	return "subnetcache validator iterator"
}

// validation is the server clause's lines for the validator.
func validation(o Options) []string {
	if len(o.TrustAnchors) == 0 {
		return nil
	}
	lines := []string{
		"val-log-level: 2", // why an answer is bogus, in the log
		"aggressive-nsec: yes",
	}
	for _, a := range o.TrustAnchors {
		// One line, fields split by spaces (records print with tabs).
		lines = append(lines, `trust-anchor: "`+strings.Join(strings.Fields(a), " ")+`"`)
	}
	return lines
}
