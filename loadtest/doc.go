// Package loadtest will be the open-loop load generator with k6-style
// scenarios and thresholds (issue 8). Nothing here yet.
package loadtest
