package benchkit

import (
	"slices"
	"time"
)

// Summary is a latency sample's order statistics.
type Summary struct {
	N    int           `json:"n"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`
	Mean time.Duration `json:"mean_ns"`
}

// Summarize sorts samples in place and summarizes them; zero for none.
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	return Summary{
		N: len(samples), P50: Percentile(samples, 0.50), P90: Percentile(samples, 0.90),
		P99: Percentile(samples, 0.99), Max: samples[len(samples)-1], Mean: sum / time.Duration(len(samples)),
	}
}

// Percentile is the nearest-rank percentile of sorted samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// MS is d in milliseconds.
func MS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
