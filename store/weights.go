package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// WeightsPrefix is the prefix of every key made by WeightsKey.
const WeightsPrefix = "weights/sha256/"

// WeightsKey returns "weights/sha256/<hex>.safetensors", the key under which
// PutWeights stores weights whose SHA-256 is sha256hex. The hex is
// lower-cased; it is not otherwise checked, but a malformed one yields a key
// that the Bucket rejects or that holds nothing.
func WeightsKey(sha256hex string) string {
	return WeightsPrefix + strings.ToLower(sha256hex) + ".safetensors"
}

// PutWeights stores data under WeightsKey(sha256(data)) and returns that key
// and the hex hash. It writes with PutIfAbsent, so publishing the same
// weights twice, or from two processes at once, is success. When the key
// exists already, PutWeights reads the object back and checks its hash; an
// object that does not match (tampered or corrupt) is replaced with data.
func PutWeights(ctx context.Context, b *Bucket, data []byte) (key, sha string, err error) {
	sum := sha256.Sum256(data)
	sha = hex.EncodeToString(sum[:])
	key = WeightsKey(sha)
	err = b.PutIfAbsent(ctx, key, data)
	if errors.Is(err, ErrExists) {
		_, err = GetVerified(ctx, b, key, sha)
		switch {
		case errors.Is(err, ErrHashMismatch), errors.Is(err, ErrNotFound):
			// Corrupt, or deleted since: write it again.
			err = b.Put(ctx, key, data)
		}
	}
	if err != nil {
		return "", "", err
	}
	return key, sha, nil
}

// GetVerified returns the object under key after checking that its SHA-256
// is want (hex, either case). A mismatch is an error wrapping
// ErrHashMismatch, naming both hashes; a malformed want is an error too.
func GetVerified(ctx context.Context, b *Bucket, key, want string) ([]byte, error) {
	want = strings.ToLower(want)
	if len(want) != 2*sha256.Size || !isHex(want) {
		return nil, fmt.Errorf("store: get-verified %q: want %q is not a hex SHA-256", key, want)
	}
	data, err := b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("%w: %q in %s has sha256 %s, want %s", ErrHashMismatch, key, b.URL(), got, want)
	}
	return data, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
