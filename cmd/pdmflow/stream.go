package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	flag "github.com/spf13/pflag"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/gpu"
	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/internal/natsconn"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/store"
)

// connection holds the NATS, S3 and stream settings shared by the commands
// that talk to a deployment. Precedence: flags, then environment variables,
// then the --connect file, then defaults.
type connection struct {
	nats        natsconn.Config
	s3          store.Config
	stream      consumer.StreamConfig
	file        string
	metricsAddr string
}

func (c *connection) addFlags(fs *flag.FlagSet) {
	c.nats.AddFlags(fs)
	fs.StringVar(&c.s3.Endpoint, "s3-endpoint", "", "S3 endpoint host:port or URL (env PDMFLOW_S3_ENDPOINT, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL; default AWS S3)")
	fs.StringVar(&c.s3.AccessKey, "s3-access-key", "", "S3 access key (env PDMFLOW_S3_ACCESS_KEY or AWS_ACCESS_KEY_ID; none: the AWS chain: ~/.aws files, then the task, pod or instance role)")
	fs.StringVar(&c.s3.SecretKey, "s3-secret-key", "", "S3 secret key; prefer the env var (env PDMFLOW_S3_SECRET_KEY or AWS_SECRET_ACCESS_KEY; a session token only from PDMFLOW_S3_SESSION_TOKEN or AWS_SESSION_TOKEN)")
	fs.StringVar(&c.s3.Profile, "s3-profile", "", "profile of the AWS shared config and credentials files (env PDMFLOW_S3_PROFILE or AWS_PROFILE)")
	fs.StringVar(&c.s3.Region, "s3-region", "", "S3 region (env PDMFLOW_S3_REGION, AWS_REGION or AWS_DEFAULT_REGION; on AWS default: the bucket's)")
	fs.BoolVar(&c.s3.Insecure, "s3-insecure", false, "plain http to S3 (env PDMFLOW_S3_INSECURE=1)")
	fs.StringVar(&c.s3.CAFile, "s3-ca", "", "PEM file of a private CA for S3 (env PDMFLOW_S3_CA_FILE)")
	fs.StringVar(&c.stream.Name, "stream", "", "JetStream stream name (default PDMFLOW_PAIRS_RUN: each run its own; an existing stream of every run, PDMFLOW_PAIRS, is found by subject)")
	fs.StringVar(&c.stream.Subject, "subject", "", "subject prefix of the pair stream (default pdmflow.pairs)")
	c.stream.MaxBytes = 0
	fs.Var((*byteSize)(&c.stream.MaxBytes), "stream-max-bytes", "retention of a stream this command creates, in bytes (KiB, MiB, GiB suffixes; default 8GiB): the oldest messages go first")
	durationVar(fs, &c.stream.MaxAge, "stream-max-age", 0, true, "retention of a stream this command creates, in time (default none)")
	optCountVar(fs, &c.stream.Replicas, "replicas", 0, "replicas of the stream and of the weights KV bucket (3 on a 3-node cluster; default 1)")
	fs.StringVar(&c.file, "connect", "", "YAML file with nats: and s3: settings (lowest precedence after env vars)")
}

// addMetricsFlag gives a long-running command that has Prometheus
// metrics its --metrics-addr.
func (c *connection) addMetricsFlag(fs *flag.FlagSet) {
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address, e.g. :9090")
}

// connectFile is the --connect file's shape.
type connectFile struct {
	NATS struct {
		URL      string `yaml:"url"`
		User     string `yaml:"user"`
		Password string `yaml:"password"`
		Token    string `yaml:"token"`
		NKey     string `yaml:"nkey"`
		Creds    string `yaml:"creds"`
		CA       string `yaml:"ca"`
		Cert     string `yaml:"cert"`
		Key      string `yaml:"key"`
	} `yaml:"nats"`
	S3 struct {
		Endpoint  string `yaml:"endpoint"`
		AccessKey string `yaml:"access_key"`
		SecretKey string `yaml:"secret_key"`
		Region    string `yaml:"region"`
		Profile   string `yaml:"profile"`
		Insecure  bool   `yaml:"insecure"`
		CA        string `yaml:"ca"`
	} `yaml:"s3"`
}

// resolve applies the environment and the --connect file.
func (c *connection) resolve() error {
	c.nats = c.nats.FromEnv()
	c.s3 = c.s3.FromEnv()
	if c.file != "" {
		b, err := os.ReadFile(c.file)
		if err != nil {
			return fmt.Errorf("--connect: %w", err)
		}
		var f connectFile
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil {
			return fmt.Errorf("--connect %s: %w", c.file, err)
		}
		fill := func(dst *string, v string) {
			if *dst == "" {
				*dst = v
			}
		}
		n := f.NATS
		fill(&c.nats.URL, n.URL)
		fill(&c.nats.User, n.User)
		fill(&c.nats.Password, n.Password)
		fill(&c.nats.Token, n.Token)
		fill(&c.nats.NKeySeedFile, n.NKey)
		fill(&c.nats.CredsFile, n.Creds)
		fill(&c.nats.TLSCAFile, n.CA)
		fill(&c.nats.TLSCertFile, n.Cert)
		fill(&c.nats.TLSKeyFile, n.Key)
		s := f.S3
		fill(&c.s3.Endpoint, s.Endpoint)
		fill(&c.s3.AccessKey, s.AccessKey)
		fill(&c.s3.SecretKey, s.SecretKey)
		fill(&c.s3.Region, s.Region)
		fill(&c.s3.Profile, s.Profile)
		fill(&c.s3.CAFile, s.CA)
		c.s3.Insecure = c.s3.Insecure || s.Insecure
	}
	if c.stream.MaxBytes < 0 || c.stream.MaxAge < 0 {
		return fmt.Errorf("%w: --stream-max-bytes and --stream-max-age must be positive", errUsage)
	}
	c.stream.Defaults()
	nc, err := c.nats.FromContext()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	c.nats = nc
	if err := c.nats.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// dial connects to NATS and makes sure the stream exists.
func (c *connection) dial(ctx context.Context, e *env, name string) (jetstream.JetStream, func(), error) {
	c.nats.Name = name
	e.log.Info("connecting to NATS", "server", c.nats.Redacted())
	nc, err := c.nats.Connect(ctx, e.log)
	if err != nil {
		return nil, nil, err
	}
	// Acks lost in a leader change must not pin pending futures forever
	// (producers republish after their own, shorter, AckTimeout).
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(time.Minute))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	st, err := consumer.EnsureStream(ctx, js, c.stream)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	c.useStream(e, st)
	return js, func() { _ = nc.Drain() }, nil
}

// useStream makes st the stream the command works with (the run's own,
// or a stream of every run made by an earlier pdmflow, which it says).
func (c *connection) useStream(e *env, st jetstream.Stream) {
	info := st.CachedInfo().Config
	c.stream.Name = info.Name
	if c.stream.Run != "" && (len(info.Subjects) != 1 || info.Subjects[0] != c.stream.Subjects()) {
		e.log.Warn("this run's messages are in a stream shared with other runs: their producers can push this run's unread messages out of its retention; give each run its own stream (docs/operations.md)",
			"stream", info.Name, "subjects", strings.Join(info.Subjects, ","))
	}
}

func cmdProduce(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "produce", "produce --run ID --hr DIR|s3://BUCKET/PREFIX [--id NAME] [--store URL] [--degradation pdm|bicubic|gaussian] [NATS and S3 flags]")
	var conn connection
	conn.addFlags(fs)
	conn.addMetricsFlag(fs)
	var pc producer.Config
	fs.StringVar(&pc.Run, "run", "", "run id (the trainer's --run)")
	host, _ := os.Hostname()
	fs.StringVar(&pc.ID, "id", defaultProducerID(host), "producer id, unique within the run (default: this host's name, so that a restarted producer is the same one); a restarted producer with the same id continues its batch sequence, and a second live process with the same id is refused")
	hr := fs.String("hr", "", "HR images: a directory or s3://bucket/prefix")
	storeURL := fs.String("store", "", "blob store of the weights: file://DIR or s3://bucket/prefix (required for --degradation pdm)")
	preset := fs.String("preset", "cpu-small", "config the trainer uses (HR crop size, scale, seed)")
	config := fs.String("config", "", "YAML config file (overrides --preset)")
	fs.StringVar(&pc.Degradation, "degradation", "", "pdm (the trainer's current weights), bicubic or gaussian (default: the config's)")
	optCountVar(fs, &pc.HRSize, "hr-crop", 0, "HR crop side (default: the config's hr_crop)")
	seed := seed(fs, "run seed (default: the config's)")
	optCountVar(fs, &pc.BatchPairs, "batch-pairs", 0, "pairs per message (default: about 2 MiB per message)")
	optCountVar(fs, &pc.LagBudget, "lag-budget", 0, "pause while the trainer has more than this many messages pending (default: the config's lag_budget, else 16)")
	fs.StringVar(&pc.Consumer, "consumer", "", "the trainer's durable consumer to watch for lag (default trainer-RUN)")
	optCountVar(fs, &pc.MaxBatches, "batches", 0, "stop after this many batches (default: until interrupted)")
	durationVar(fs, &pc.AckTimeout, "ack-timeout", 0, true, "publish a batch again (same message id) when JetStream has not acked it after this long (default 15s)")
	fs.StringVar(&pc.Compression, "compression", "", "Arrow IPC compression: lz4 or zstd (default none)")
	device := fs.String("device", envOr(envDevice, "auto"), "where to degrade: cpu, cuda:N, cuda:all (one generator per GPU, ids ID-cudaN) or auto (every GPU if this binary has CUDA and sees one, else the CPU) [$"+envDevice+"]")
	precision := fs.String("precision", envOr(envPrecision, "fp32"), "GPU precision of the noise network's convolutions: fp32, tf32 or bf16 [$"+envPrecision+"]")
	uiAddr := uiFlag(fs, uiProduce)
	var leaseWait time.Duration
	durationVar(fs, &leaseWait, "id-wait", 2*registry.DefaultLeaseTTL, true, "how long to wait for another process's hold on this producer id to expire before giving up")
	setGroup(fs, groupTuning, "id-wait")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if err := required(map[string]string{"run": pc.Run, "hr": *hr}); err != nil {
		return err
	}
	conn.stream.Run = pc.Run
	prec, err := gpu.ParsePrecision(*precision)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := conn.resolve(); err != nil {
		return err
	}
	cfg, err := loadConfig(*preset, *config)
	if err != nil {
		return err
	}
	devs, err := gpu.Open(*device, prec, e.log)
	if err != nil {
		return err
	}
	defer func() {
		for _, d := range devs {
			d.Close()
		}
	}()
	if pc.Degradation == "" {
		pc.Degradation = cfg.Degradation
	}
	if pc.HRSize == 0 {
		pc.HRSize = cfg.HRCrop
	}
	if pc.LagBudget == 0 {
		pc.LagBudget = cmp.Or(cfg.LagBudget, 16)
	}
	pc.Seed = cfg.Seed
	if *seed >= 0 {
		pc.Seed = uint64(*seed)
	}
	pc.Scale = cfg.Scale()
	pc.PDM = &cfg.PDM
	if pc.Consumer == "" {
		pc.Consumer = "trainer-" + pc.Run
	}
	if pc.Degradation == producer.DegradePDM && *storeURL == "" {
		return fmt.Errorf("%w: --store is required to load the trainer's weights", errUsage)
	}
	images, err := dataset.LoadSource(ctx, *hr, pc.HRSize, conn.s3, e.log)
	if err != nil {
		return err
	}
	js, closeConn, err := conn.dial(ctx, e, "pdmflow-produce-"+pc.ID)
	if err != nil {
		return err
	}
	defer closeConn()
	pc.Stream, pc.Subject = conn.stream.Name, conn.stream.Subject
	// The registry holds the run's contract, which every producer checks,
	// and (pdm) the weights pointer; the weights are in the store.
	var st *store.Bucket
	if pc.Degradation == producer.DegradePDM {
		if st, err = store.Open(ctx, *storeURL, conn.s3); err != nil {
			return err
		}
		defer st.Close()
	}
	reg, err := registry.OpenReplicas(ctx, js, st, pc.Run, e.log, conn.stream.Replicas)
	if err != nil {
		return err
	}
	promReg := metrics.NewRegistry()
	if _, err := metrics.Serve(ctx, conn.metricsAddr, promReg, e.log); err != nil {
		return err
	}
	_, stopUI, err := serveUI(ctx, e, *uiAddr, "pdmflow produce "+pc.ID+" (run "+pc.Run+")", promReg)
	if err != nil {
		return err
	}
	defer stopUI()
	// One producer per device: on several GPUs each is a producer of its
	// own (id ID-cudaN, its own subject and batch sequence) in this
	// process; the first to fail stops the others.
	var ps []*producer.Producer
	pc.LeaseWait = leaseWait
	if leaseWait == 0 {
		pc.LeaseWait = -1 // not at all
	}
	for _, d := range devs {
		pci := pc
		pci.Device = d
		if len(devs) > 1 {
			pci.ID = pc.ID + "-" + strings.ReplaceAll(d.Name(), ":", "")
		}
		p, err := producer.New(pci, js, reg, images, e.log, metrics.NewProducer(promReg, pci.ID))
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		ps = append(ps, p)
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Run(rctx)
			if errs[i] != nil && !errors.Is(errs[i], context.Canceled) {
				cancel(errs[i])
			}
			e.log.Info("producer stopped", "device", devs[i].Name(), "next_batch", p.NextBatch(), "weights_version", p.Weights().Version)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil // done, or a clean stop on SIGINT/SIGTERM
}

// defaultProducerID is a producer's id when --id is not given: the host's
// name, as an id (a restarted producer on the same host is the same
// producer).
func defaultProducerID(host string) string {
	id := sanitizeID(host)
	if id == "" {
		id = "producer"
	}
	if len(id) > 64 {
		id = id[:64]
	}
	return id
}

// The environment variables of produce's device flags.
const (
	envDevice    = "PDMFLOW_DEVICE"
	envPrecision = "PDMFLOW_PRECISION"
)

// envOr is the value of the environment variable key, or def when unset.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// sanitizeID maps a string onto the run/producer id alphabet.
func sanitizeID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}
