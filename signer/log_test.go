package signer_test

import (
	"io"
	"log/slog"
	"net/http"
)

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func httpNewRequest(method, url, accept, token string) (func() ([]byte, string), error) {
	return func() ([]byte, string) {
		req, _ := http.NewRequest(method, url, nil)
		req.Header.Set("Accept", accept)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b, resp.Header.Get("Content-Type")
	}, nil
}
