// Package dashboard serves a live view of a pdmflow process as one web page:
// the loss curves and validation scores of a training run, the latest
// pictures of the learned kernels, of fake against real LR and of the PDM's
// noise, histograms of the learned kernel widths and noise levels with the
// distribution monitor's warnings, and, for the stream, every producer's
// pairs per second, weights version, lag and stalls next to the trainer's
// data wait and pair age.
//
// A Dashboard is a trainer.Observer: the trainer hands it its reports,
// samples of the learned distribution and pictures as it trains. The stream
// panel reads the process's Prometheus registry (Options.Metrics) once a
// second and computes rates from it, so a producer process, which trains
// nothing, has a dashboard of its own producers.
//
// The page, its script and its style sheet are embedded (hand-written, no
// build step, nothing loaded from elsewhere); the script polls
// /api/state and draws on canvases. Endpoints:
//
//	/                  the page
//	/api/state         everything the page shows, as JSON
//	/api/picture/NAME  the latest picture NAME (kernels.png, lr_samples.png, noise.png)
//
// The server has no authentication: bind it to 127.0.0.1 unless it is
// exposed deliberately (Serve logs a warning when it listens beyond the
// loopback interface).
package dashboard
