// Package soak holds pdmflow's fault soak (soak_test.go): a trainer and
// producers run through an embedded JetStream server and a real S3 server
// on the loopback interface while faults are injected at random, from a
// logged seed: malformed and foreign messages on every subject, replayed
// copies of stored batches, producers killed, the broker restarted, the
// store stopped, weights of another config published. At the end it checks
// from the trainer's ledger, its checkpoint and the stream that no acked
// good pair was lost or trained twice, that no forged pair was trained and
// that training went on.
//
// It runs only with PDMFLOW_SOAK set to how long to inject faults (`make
// soak`, SOAK=5m; CI runs a short one); PDMFLOW_SOAK_SEED replays a choice
// of faults. It stops by itself.
package soak
