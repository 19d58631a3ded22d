package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/api"
)

// TestDashboardMetricsPage: with a Prometheus URL the dashboard page turns its
// Metrics view on (asynqmon templates the address into its index page).
func TestDashboardMetricsPage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want string
	}{
		{"", `PROMETHEUS_SERVER_ADDRESS="",`},
		{"http://prometheus:9090", `prometheus:9090`}, // html/template escapes the slashes
	} {
		b := setup(t, options{api: api.Config{PrometheusURL: tc.url}})
		resp, err := http.Get(b.url + "/monitoring/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), tc.want) {
			t.Errorf("PrometheusURL %q: status %d, page lacks %s", tc.url, resp.StatusCode, tc.want)
		}
	}
}
