package main

import (
	"context"
	"fmt"

	"github.com/pdmflow/pdmflow/gpu"
)

// cmdDevices says what a producer started here with --device would
// generate on: the GPU support built in, what the driver sees, and the
// devices a spec resolves to.
func cmdDevices(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "devices", "devices [--device cpu|cuda:N|cuda:all|auto] [--precision fp32|tf32|bf16]")
	device := fs.String("device", envOr(envDevice, "auto"), "the device spec to resolve, as produce's --device [$"+envDevice+"]")
	precision := fs.String("precision", envOr(envPrecision, "fp32"), "GPU precision, as produce's --precision [$"+envPrecision+"]")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	prec, err := gpu.ParsePrecision(*precision)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch b := gpu.Backend(); b {
	case "":
		fmt.Fprintln(e.stdout, "GPU support: none (a default build; make build-cuda builds bin/pdmflow-cuda)")
	default:
		fmt.Fprintf(e.stdout, "GPU support: %s\n", b)
		if n, err := gpu.Count(); err != nil {
			fmt.Fprintf(e.stdout, "GPUs: none usable: %v\n", err)
		} else {
			fmt.Fprintf(e.stdout, "GPUs: %d\n", n)
		}
	}
	devs, err := gpu.Open(*device, prec, e.log)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "--device %s resolves to:\n", *device)
	for _, d := range devs {
		fmt.Fprintf(e.stdout, "  %s\n", d.Describe())
		d.Close()
	}
	return nil
}
