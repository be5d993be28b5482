package gossip

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// logBridge receives memberlist's log lines ("[LEVEL] memberlist: text")
// through a *log.Logger and re-emits them into slog at debug level, with
// memberlist's own level as the attribute memberlist_level.
//
// It also watches for the one line that names a member this node has just
// started to suspect. Memberlist v0.7.0 has no callback for suspicion, and
// its Node.State field is never filled in (the internal nodeState type
// shadows it), so no public API says which members are suspect. The line "Suspect <name> has failed, no acks received", written by the
// prober right before it marks the member suspect, is the only race-free
// signal that carries the member's name. TestFailureDetectedWithinBound
// fails if a memberlist upgrade changes the line.
//
// Likewise memberlist counts nothing when it drops traffic that no key
// opens; it only logs it. The bridge reports those lines to
// onUndecryptable with the transport: "Decrypt packet failed" for UDP,
// and a stream it failed to receive with an error about encryption
// ("no installed keys could decrypt the message", "encryption is
// configured but remote state is not encrypted") for TCP.
// TestIntruderCannotDeclareMembersDead fails if an upgrade changes them.
type logBridge struct {
	log             *slog.Logger
	onSuspect       func(name string)
	onUndecryptable func(transport string)
}

// suspectPrefix and suspectSuffix frame the member's name in memberlist's
// probe-failure line (state.go, probeNode).
const (
	suspectPrefix = "Suspect "
	suspectSuffix = " has failed, no acks received"
)

// The lines memberlist writes when it drops a packet (net.go,
// ingestPacket) or a stream (handleConn) that no key opens.
const (
	packetDecryptPrefix = "Decrypt packet failed: "
	streamFailedPrefix  = "failed to receive: "
	streamCryptoWord    = "crypt" // in "decrypt", "encrypted", "encryption"
)

func newMemberlistLogger(b *logBridge) *log.Logger { return log.New(b, "", 0) }

func (b *logBridge) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\r\n")
	level := "INFO"
	if strings.HasPrefix(line, "[") {
		if end := strings.IndexByte(line, ']'); end > 0 {
			level = line[1:end]
			line = strings.TrimLeft(line[end+1:], " ")
		}
	}
	msg := strings.TrimPrefix(line, "memberlist: ")
	if b.onSuspect != nil {
		if rest, ok := strings.CutPrefix(msg, suspectPrefix); ok {
			if name, ok := strings.CutSuffix(rest, suspectSuffix); ok {
				b.onSuspect(name)
			}
		}
	}
	if b.onUndecryptable != nil {
		switch {
		case strings.HasPrefix(msg, packetDecryptPrefix):
			b.onUndecryptable(transportPacket)
		case strings.HasPrefix(msg, streamFailedPrefix) && strings.Contains(msg, streamCryptoWord):
			b.onUndecryptable(transportStream)
		}
	}
	if b.log.Enabled(context.Background(), slog.LevelDebug) {
		b.log.Debug(msg, "component", "memberlist", "memberlist_level", level)
	}
	return len(p), nil
}
