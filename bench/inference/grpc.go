package main

// P1c: the same textdir load, one image per request, through the gRPC Open
// Inference Protocol (ModelInfer with raw_input_contents) and through HTTP
// with the binary tensor extension, on one server and one port: images/s
// and the server process's CPU per image, side by side. As information,
// the same gRPC load over one shared HTTP/2 connection (how gRPC clients
// usually call), and through the server's grpc.Server on a listener of its
// own (grpc-go's native HTTP/2 transport) instead of grpc.Server.ServeHTTP
// under net/http, which the shared port costs.
//
// P1c loads the same server child as P1a (child.go), whose CPU time is
// read apart from the load generator's; the child also serves its
// grpc.Server on a native listener.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"meridian.dev/meridian/inference"
	"meridian.dev/meridian/inference/oip"
	"meridian.dev/meridian/internal/loadgen"
)

// p1cPhase is what one closed-loop phase did.
type p1cPhase struct {
	ok, errs  int64
	firstErr  string
	wall, srv time.Duration
	latencies []time.Duration
}

func (p p1cPhase) perSecond() float64 { return float64(p.ok) / p.wall.Seconds() }

func (p p1cPhase) cpuPerImage() float64 {
	if p.ok == 0 {
		return 0
	}
	return p.srv.Seconds() / float64(p.ok)
}

func (p *p1cPhase) add(o p1cPhase) {
	p.ok += o.ok
	p.errs += o.errs
	if p.firstErr == "" {
		p.firstErr = o.firstErr
	}
	p.wall += o.wall
	p.srv += o.srv
	p.latencies = append(p.latencies, o.latencies...)
}

// closedLoop runs conc workers, each with one call in flight, until d has
// passed; call(worker, i) makes one call.
func closedLoop(srv *serverProc, conc int, d time.Duration, call func(w, i int) error) p1cPhase {
	var (
		okN, errN atomic.Int64
		mu        sync.Mutex
		firstErr  string
		lat       []time.Duration
		wg        sync.WaitGroup
	)
	cpu0, t0 := srv.cpu(), time.Now()
	deadline := t0.Add(d)
	for w := range conc {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 1024)
			for i := w; time.Now().Before(deadline); i++ {
				start := time.Now()
				if err := call(w, i); err != nil {
					errN.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
					time.Sleep(10 * time.Millisecond) // a dead server must not spin the loop
					continue
				}
				mine = append(mine, time.Since(start))
				okN.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return p1cPhase{ok: okN.Load(), errs: errN.Load(), firstErr: firstErr, wall: time.Since(t0), srv: srv.cpu() - cpu0, latencies: lat}
}

type p1cResult struct {
	grpc, http, shared, native p1cPhase
	ratio, cpuRatio            float64
	nativeRatio                float64
	errors                     int64
}

// benchGRPC is P1c.
func benchGRPC(c config, srv *serverProc) (p1cResult, error) {
	var res p1cResult
	fmt.Println("== P1c textdir: gRPC ModelInfer (raw_input_contents) vs HTTP binary tensor extension, one server, one port")
	fmt.Printf("server: %s (HTTP/1.1, h2c, gRPC) and %s (the same grpc.Server, native listener) in child process %d, result cache off\n",
		srv.addr, srv.native, srv.cmd.Process.Pid)

	images := makeImages()
	raws := make([][]byte, len(images))
	bodies := make([][]byte, len(images))
	var header string
	for i, img := range images {
		raw := make([]byte, 0, 4*len(img))
		for _, f := range img {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
		}
		raws[i] = raw
		header = fmt.Sprintf(`{"inputs":[{"name":"x","shape":[1,3,48,192],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"parameters":{"binary_data_output":true}}`, len(raw))
		bodies[i] = append([]byte(header), raw...)
	}
	headerLen := strconv.Itoa(len(header))

	conc := c.concurrency
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil,
		MaxIdleConns: conc, MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, IdleConnTimeout: time.Minute, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	url := "http://" + srv.addr + "/v2/models/textdir/infer"
	httpCall := func(_, i int) error {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(bodies[i%len(bodies)]))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set(inference.HeaderLength, headerLen)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		switch {
		case err != nil:
			return err
		case resp.StatusCode != http.StatusOK:
			return fmt.Errorf("status %s: %.200s", resp.Status, body)
		case len(body) < 8:
			return fmt.Errorf("answer of %d bytes", len(body))
		}
		return nil
	}

	dial := func(addr string, n int) ([]oip.GRPCInferenceServiceClient, func(), error) {
		var conns []*grpc.ClientConn
		var clients []oip.GRPCInferenceServiceClient
		closeAll := func() {
			for _, cc := range conns {
				_ = cc.Close()
			}
		}
		for range n {
			cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			conns = append(conns, cc)
			clients = append(clients, oip.NewGRPCInferenceServiceClient(cc))
		}
		return clients, closeAll, nil
	}
	grpcCall := func(clients []oip.GRPCInferenceServiceClient) func(w, i int) error {
		return func(w, i int) error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := clients[w%len(clients)].ModelInfer(ctx, &oip.ModelInferRequest{ModelName: "textdir",
				Inputs:           []*oip.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 3, 48, 192}}},
				RawInputContents: [][]byte{raws[i%len(raws)]}})
			if err != nil {
				return err
			}
			if len(r.RawOutputContents) != 1 || len(r.RawOutputContents[0]) != 8 {
				return errors.New("the answer is not one output of two FP32")
			}
			return nil
		}
	}
	perConn, closePerConn, err := dial(srv.addr, conc)
	if err != nil {
		return res, err
	}
	defer closePerConn()
	shared, closeShared, err := dial(srv.addr, 1)
	if err != nil {
		return res, err
	}
	defer closeShared()
	native, closeNative, err := dial(srv.native, conc)
	if err != nil {
		return res, err
	}
	defer closeNative()

	phases := []struct {
		name string
		out  *p1cPhase
		call func(w, i int) error
	}{
		{"HTTP binary, " + strconv.Itoa(conc) + " HTTP/1.1 connections", &res.http, httpCall},
		{"gRPC, " + strconv.Itoa(conc) + " HTTP/2 connections", &res.grpc, grpcCall(perConn)},
		{"gRPC, 1 shared HTTP/2 connection", &res.shared, grpcCall(shared)},
		{"gRPC native listener, " + strconv.Itoa(conc) + " connections", &res.native, grpcCall(native)},
	}
	for _, p := range phases { // warm-up: connections open, workers busy
		if w := closedLoop(srv, conc, time.Second, p.call); w.ok == 0 {
			return res, fmt.Errorf("%s warm-up: no call succeeded: %s", p.name, w.firstErr)
		}
	}
	slices := max(c.slices, 1)
	slice := c.duration / time.Duration(slices)
	fmt.Printf("%d concurrent callers, 1 image per call, %d slices of %s per phase, phases alternating:\n", conc, slices, slice)
	for s := range slices {
		for _, p := range phases {
			r := closedLoop(srv, conc, slice, p.call)
			fmt.Printf("  slice %d %-42s %7.1f img/s  server CPU %4.0fus/img  p50 %s  %d errors\n",
				s+1, p.name+":", r.perSecond(), r.cpuPerImage()*1e6, ms(loadgen.Percentile(r.latencies, 0.5)), r.errs)
			p.out.add(r)
		}
	}
	for _, p := range phases {
		fmt.Printf("%-44s %7.1f img/s  server CPU %4.0fus/img  p50 %s p99 %s  %d errors%s\n", p.name+":", p.out.perSecond(), p.out.cpuPerImage()*1e6,
			ms(loadgen.Percentile(p.out.latencies, 0.5)), ms(loadgen.Percentile(p.out.latencies, 0.99)), p.out.errs, firstErr(p.out.firstErr))
		res.errors += p.out.errs
	}
	res.ratio = res.grpc.perSecond() / res.http.perSecond()
	if res.http.cpuPerImage() > 0 {
		res.cpuRatio = res.grpc.cpuPerImage() / res.http.cpuPerImage()
	}
	res.nativeRatio = res.native.perSecond() / res.grpc.perSecond()
	return res, nil
}

func firstErr(s string) string {
	if s == "" {
		return ""
	}
	return " (first: " + s + ")"
}

// printP1c prints P1c's summary lines.
func printP1c(r p1cResult) {
	fmt.Printf("P1c grpc_vs_http=%.3f grpc=%.1f http=%.1f target=none (informational: img/s, gRPC ModelInfer raw_input_contents over HTTP binary, same port, one connection per caller)\n",
		r.ratio, r.grpc.perSecond(), r.http.perSecond())
	fmt.Printf("P1c grpc_cpu_vs_http=%.3f grpc=%.0fus http=%.0fus target=none (informational: server CPU per image)\n",
		r.cpuRatio, r.grpc.cpuPerImage()*1e6, r.http.cpuPerImage()*1e6)
	fmt.Printf("P1c grpc_shared_conn=%.1f native_vs_servehttp=%.3f target=none (informational: img/s over one shared connection; grpc.Server on its own listener over ServeHTTP on the shared port)\n",
		r.shared.perSecond(), r.nativeRatio)
	fmt.Printf("P1c errors=%d target=0 %s\n", r.errors, verdict(r.errors == 0))
}

// runP1c runs P1c after P1a and P1b and prints its summary.
func runP1c(c config, srv *serverProc) error {
	fmt.Println()
	r, err := benchGRPC(c, srv)
	if err != nil {
		return fmt.Errorf("P1c: %w", err)
	}
	fmt.Println()
	printP1c(r)
	return nil
}
