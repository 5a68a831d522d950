// Package kernels holds the numeric kernels of pdmflow: GEMM, convolution
// (forward and both gradients), the per-sample blur + downsample of PDM and
// its gradients, pixel shuffle, normalisation layers, bicubic resizing and
// the image-quality metrics.
//
// Every kernel has a plain reference implementation, named with a Ref
// suffix, written for clarity and used as the test oracle. The exported
// functions without the suffix are the fast paths; tests compare each fast
// path against its reference on random inputs of many shapes.
//
// Tensors are dense row-major slices in NCHW order with shapes passed as
// explicit parameter structs; weights are OIHW. Functions are generic over
// float32 (training and inference) and float64 (gradient checks). The
// package imports nothing else of pdmflow.
package kernels
