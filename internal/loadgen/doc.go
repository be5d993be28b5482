// Package loadgen offers load the way users do: open loop, at a fixed rate
// on a schedule computed from the start time, whatever the answers take.
// Benchmarks and drills use it so that "N requests per second" means the
// same thing everywhere.
//
// Run sends request i of a phase at phaseStart + i/Rate. It never uses a
// time.Ticker, which silently drops ticks when the receiver is late: a
// send that is late is still made and its lateness is measured. Every
// request runs in its own goroutine, so a slow answer never delays the
// next send. With Options.MaxInFlight set, a request that finds that many
// already in flight at its due time is not sent and is counted as
// dropped, never skipped silently.
//
// The Report says how much load was due (offered), how much was sent,
// answered well, failed or dropped, the rate achieved against the rate
// offered, and the largest lateness of a send behind its schedule. Its
// verdict, Report.LoadOffered, is false when the generator could not
// offer its load (less than Options.MinAchieved of it sent in some phase,
// or a send later than Options.MaxLateness); a run whose load was not
// offered must not count as a pass, whatever its latencies say.
//
// Latencies are kept for every request that was sent, failed ones
// included; Options.OnResult sees each request, dropped ones too, for
// timelines and per-second windows.
package loadgen
