package store_test

import (
	"context"
	"fmt"
	"os"

	"github.com/pdmflow/pdmflow/store"
)

// One Bucket type over a directory or an S3 prefix: the same calls either
// way ("s3://bucket/prefix" with a Config naming the endpoint and keys).
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	b, err := store.Open(ctx, dir, store.Config{})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	if err := b.Put(ctx, "runs/r1/notes.txt", []byte("hello")); err != nil {
		panic(err)
	}
	// A conditional put does not overwrite.
	err = b.PutIfAbsent(ctx, "runs/r1/notes.txt", []byte("again"))
	fmt.Println(err != nil)
	data, _ := b.Get(ctx, "runs/r1/notes.txt")
	keys, _ := b.List(ctx, "runs/")
	fmt.Println(string(data), keys)
	_, err = b.Get(ctx, "runs/r2/none")
	fmt.Println(err != nil)
	// Output:
	// true
	// hello [runs/r1/notes.txt]
	// true
}
