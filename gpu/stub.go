//go:build !pdmcuda && !pdmcudaemu

package gpu

import "github.com/pdmflow/pdmflow/model"

const backendName = ""

func deviceCount() (int, error) { return 0, ErrNotBuilt }

func openDevice(int, Precision) (model.Device, error) { return nil, ErrNotBuilt }
