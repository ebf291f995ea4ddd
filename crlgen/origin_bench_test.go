package crlgen

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkConditionalGET: conditional GETs of a full CRL answered 304 by
// the origin, next to a static fasthttp answer of the same 304 on the same
// loopback in the same run (the ceiling).
//
//	go test -run '^$' -bench ConditionalGET -count 5 ./crlgen/
func BenchmarkConditionalGET(b *testing.B) {
	g, _, _, _ := benchGenerator(b, 1000)
	if _, err := g.Build("bench", Full); err != nil {
		b.Fatal(err)
	}
	obj, err := g.srv.lookup("/bench.crl")
	if err != nil || obj == nil {
		b.Fatal(err)
	}
	static := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("ETag", obj.etag)
		ctx.SetStatusCode(304)
	}}
	for _, tc := range []struct {
		name string
		srv  *fasthttp.Server
	}{{"static", static}, {"origin", g.srv.srv}} {
		b.Run(tc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go tc.srv.Serve(ln)
			defer ln.Close()
			c := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 64}
			url := "http://" + ln.Addr().String() + "/bench.crl"
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI(url)
				req.Header.Set("If-None-Match", obj.etag)
				for pb.Next() {
					if err := c.Do(req, resp); err != nil || resp.StatusCode() != 304 {
						b.Errorf("%v %d", err, resp.StatusCode())
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
