// Package model holds pdmflow's networks and what trains them: PDM's kernel
// and noise networks (pdm-spec §2), the PatchGAN discriminator, the SR
// networks behind one type (SR: EDSR and RRDB, an architecture table keyed
// by sr.arch), VGG19's features for the perceptual loss, the losses, Adam,
// exponential moving averages, and the safetensors weights files each of
// them is saved as. Inference outside a training graph goes through
// PDM.Degrade (one image) or a Sampler (batches), and a producer degrades
// through the Device seam (CPU is the reference; package gpu adds CUDA).
//
// # Graphs
//
// A Graph is one computation (a training step's loss and gradients, or an
// inference pass) built from the networks' Forward methods as a gorgonia
// expression graph whose ops are package kernels' routines. Build it once,
// run it many times with new inputs:
//
//   - Building never panics on a bad shape or a missing parameter: the first
//     error is recorded, later calls become no-ops that return nil nodes,
//     and Err (or the first Run) reports it. Model code therefore reads as
//     a list of layers without an error check after each.
//   - Train(modules...) says which parameters get gradients in this graph,
//     before the layers that use them are added; Backward(loss) then adds
//     gradient nodes only for what depends on a trained parameter. The
//     discriminator is frozen in the generator's graph and trained in its
//     own (pdm-spec §5) by building two graphs, not by toggling flags.
//   - Parameters are bound in place: an optimizer step on a Param's values
//     is seen by every graph that uses it, without copying.
//
// # Buffers
//
// Op outputs come from an Arena and go back to it as soon as the last op
// reading them has run, so a step's peak memory is what is alive at once,
// not the sum of every activation; graphs that run one after another share
// an arena (ShareArena). A value read after Run (Float32s, Scalar, a
// network's output) must be marked with Keep before the first Run: it stays
// valid until the graph runs again. Reading an output that was not kept
// panics rather than returning another op's data. Gradients (Grad) are kept.
// Buffers handed to Run as inputs are read, never written or kept. A Graph
// is not safe for concurrent use; graphs sharing an arena must not run at
// the same time.
//
// # Precision
//
// Training and inference run in float32 (tensor.Float32). Every op also
// runs in float64, which the gradient checks use: each op's gradient and
// each network's end to end are compared with central differences in
// float64 (package internal/gradcheck), where the truncation and rounding
// errors are small enough to tell a wrong gradient from noise. Weights
// files hold float32.
//
// # Weights files
//
// Every network is saved as safetensors with a kind ("pdm", "disc", "sr",
// "checkpoint") and its config in the metadata; loading checks the kind
// and every tensor's name and shape, so a file of another network or shape
// is refused with an error that names the tensor.
package model
