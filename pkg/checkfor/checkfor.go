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
