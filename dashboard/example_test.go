package dashboard_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"

	"github.com/pdmflow/pdmflow/dashboard"
)

// A dashboard watches a training run as its trainer.Observer (in a
// program: d.Serve(ctx, "127.0.0.1:8080") and trainer.Options{Observer:
// d}); here the trainer's calls are made by hand and /api/state is read
// back.
func Example() {
	d := dashboard.New(dashboard.Options{Title: "pdmflow train runs/r1"})
	d.Begin("runs/r1", "cpu-small", 0, 1500)
	d.Report(50, map[string]float64{"l1": 0.061, "g_adv": 0.27})
	d.Report(100, map[string]float64{"l1": 0.054, "g_adv": 0.25})
	d.Sample(100, "kernel_width", []float64{1.9, 2.3, 2.1})

	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/state", nil))
	var st struct {
		Runs []struct {
			Name    string                  `json:"name"`
			Step    int                     `json:"step"`
			Series  map[string][][2]float64 `json:"series"`
			Samples map[string]struct {
				Values []float64 `json:"values"`
			} `json:"samples"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		fmt.Println(err)
		return
	}
	r := st.Runs[0]
	fmt.Println(r.Name, "at step", r.Step)
	fmt.Println("l1:", r.Series["l1"])
	fmt.Println("kernel widths:", r.Samples["kernel_width"].Values)
	// Output:
	// runs/r1 at step 100
	// l1: [[50 0.061] [100 0.054]]
	// kernel widths: [1.9 2.3 2.1]
}
