// Package checkfor polls a condition with a deadline, for tests that wait
// on another goroutine or process (nats-server's checkFor): no fixed sleeps.
package checkfor

import (
	"testing"
	"time"
)

// True polls cond every few milliseconds and fails the test if it is not
// true within d.
func True(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Within polls cond every interval until it is true or d has passed, and
// reports whether it became true; for waits whose failure the caller
// words itself, or that are not failures at all.
func Within(d, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}
