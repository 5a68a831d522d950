package registry_test

import (
	"context"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/internal/broker"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/store"
)

// The trainer publishes weights (object first, pointer second); a producer
// reads the pointer and fetches the object, verified by its hash.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "registry-example")
	defer os.RemoveAll(dir)
	srv, err := broker.Start(ctx, broker.Options{Dir: dir + "/js", Port: -1})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	blobs, err := store.Open(ctx, dir+"/blobs", store.Config{})
	if err != nil {
		panic(err)
	}
	reg, err := registry.Open(ctx, js, blobs, "r1", nil)
	if err != nil {
		panic(err)
	}
	for step, w := range [][]byte{[]byte("weights at step 0"), []byte("weights at step 50")} {
		if _, err := reg.Publish(ctx, w, 50*step); err != nil {
			panic(err)
		}
	}
	p, _, err := reg.Latest(ctx)
	if err != nil {
		panic(err)
	}
	data, err := reg.Fetch(ctx, p)
	if err != nil {
		panic(err)
	}
	fmt.Printf("version %d from step %d: %q\n", p.Version, p.Step, data)
	// Output: version 2 from step 50: "weights at step 50"
}
