package pth_test

import (
	"fmt"

	"github.com/pdmflow/pdmflow/pth"
)

// Reading a state dict that torch.save wrote: nested dicts give dotted
// names, and the plain values are kept apart from the tensors.
func ExampleReadFile() {
	f, err := pth.ReadFile("testdata/zip.pth")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range f.Tensors[:3] {
		fmt.Println(t.Name, t.DType, t.Shape)
	}
	fmt.Println(f.Format, len(f.Tensors), "tensors; epoch", f.Values["epoch"])
	// Output:
	// net.0.weight F32 [2 3 3 3]
	// net.0.bias F32 [2]
	// net.1.weight F32 [2]
	// zip 18 tensors; epoch 7
}
