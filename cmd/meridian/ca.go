package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"meridian.dev/meridian/internal/tlsx"
)

func caCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Create a Meridian CA and issue the fleet's TLS certificates from it",
		Long: `ca creates the Meridian CA (an ECDSA P-256 root) and issues server and client
certificates from it, or from a CA the operator supplies. Everything is
written in cert-manager's Secret layout — a directory holding tls.crt,
tls.key (mode 0600) and ca.crt — so a directory can become a Kubernetes
Secret as is:

  kubectl -n meridian-system create secret generic meridian-glb-tls \
    --from-file=DIR/tls.crt --from-file=DIR/tls.key --from-file=DIR/ca.crt

and a CA directory can back a cert-manager CA Issuer (spec.ca.secretName)
that issues the same certificates in the cluster. Meridian's servers and
clients read these directories and reload them within seconds when they
change, without a restart: issuing again into the same directory rotates
a certificate.`,
	}
	cmd.AddCommand(caInitCommand(), caIssueCommand())
	return cmd
}

func caInitCommand() *cobra.Command {
	var (
		dir   string
		o     tlsx.CAOptions
		force bool
	)
	cmd := &cobra.Command{
		Use:     "init --dir DIR",
		Short:   "Create a new Meridian CA in DIR (tls.crt, tls.key, ca.crt)",
		Example: "  meridian ca init --dir /etc/meridian/ca",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := os.Stat(filepath.Join(dir, tlsx.KeyFile)); err == nil && !force {
				return fmt.Errorf("%s already holds a CA key: replacing it makes every certificate it issued untrusted once peers load the new ca.crt; pass --force to do that, or pick another --dir", dir)
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("--dir: %w", err)
			}
			ca, err := tlsx.NewCA(o)
			if err != nil {
				return err
			}
			if err := ca.Bundle().WriteDir(dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "CA %q written to %s, valid until %s.\nGive %s to the fleet's peers and clients; keep %s secret.\n",
				ca.Cert.Subject.CommonName, dir, ca.Cert.NotAfter.UTC().Format(time.RFC3339),
				filepath.Join(dir, tlsx.CAFile), filepath.Join(dir, tlsx.KeyFile))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory to write the CA into (created if missing; required)")
	f.StringVar(&o.CommonName, "common-name", "Meridian CA", "the CA's subject common name, shown to people who inspect a certificate")
	f.DurationVar(&o.TTL, "ttl", tlsx.DefaultCATTL, "how long the CA is valid; certificates it issues never outlive it")
	f.BoolVar(&force, "force", false, "replace a CA already in --dir (every certificate the old one issued stops being trusted)")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

func caIssueCommand() *cobra.Command {
	var (
		caDir, caCert, caKey, caBundle, outDir, usage string
		uris                                          []string
		o                                             tlsx.IssueOptions
	)
	cmd := &cobra.Command{
		Use:   "issue --ca-dir DIR --out-dir DIR [--dns NAME] [--ip ADDR] [--uri URI]",
		Short: "Issue a server or client certificate into DIR (tls.crt, tls.key, ca.crt)",
		Example: `  meridian ca issue --ca-dir ca --out-dir us-east --dns us-east.infer.example.com --ip 203.0.113.7 --usage server
  meridian ca issue --ca-dir ca --out-dir glb --dns glb.meridian-system.svc --uri spiffe://example.com/glb --usage both
  meridian ca issue --ca-cert corp-issuing.pem --ca-key corp-issuing.key --ca-bundle corp-root.pem --out-dir hub --dns hub.example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caDir != "" && filepath.Clean(caDir) == filepath.Clean(outDir) {
				return errors.New("--out-dir is the CA's own directory: issuing there would replace the CA's key; pick another")
			}
			files := tlsx.Files{}
			if caDir != "" {
				files = tlsx.Dir(caDir)
				if _, err := os.Stat(files.CA); errors.Is(err, fs.ErrNotExist) {
					files.CA = ""
				}
			}
			files = files.Override(tlsx.Files{Cert: caCert, Key: caKey, CA: caBundle})
			if files.Cert == "" || files.Key == "" {
				return errors.New("name the CA: --ca-dir, or --ca-cert and --ca-key")
			}
			ca, err := tlsx.LoadCA(files)
			if err != nil {
				return err
			}
			if o.Usage, err = tlsx.ParseUsage(usage); err != nil {
				return fmt.Errorf("--usage: %w", err)
			}
			for _, s := range uris {
				u, err := url.Parse(s)
				if err != nil || u.Scheme == "" {
					return fmt.Errorf("--uri %q: give an absolute URI, such as spiffe://example.com/glb", s)
				}
				o.URIs = append(o.URIs, u)
			}
			b, err := ca.Issue(o)
			if err != nil {
				return err
			}
			if err := b.WriteDir(outDir); err != nil {
				return err
			}
			return describeIssued(cmd, outDir)
		},
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca-dir", "", "directory of the issuing CA in cert-manager's layout, as 'meridian ca init' writes it (tls.crt, tls.key, and ca.crt when the CA is an intermediate)")
	f.StringVar(&caCert, "ca-cert", "", "the issuing CA's certificate file (PEM, then its chain if it is an intermediate); overrides --ca-dir's tls.crt")
	f.StringVar(&caKey, "ca-key", "", "the issuing CA's private key file (PEM: PKCS#8, SEC 1 or PKCS#1); overrides --ca-dir's tls.key")
	f.StringVar(&caBundle, "ca-bundle", "", "the trust anchor written as ca.crt (PEM), when it is not the CA itself: the root above an intermediate; overrides --ca-dir's ca.crt")
	f.StringVar(&outDir, "out-dir", "", "directory to write the certificate into (created if missing; issuing into it again rotates the certificate; required)")
	f.StringVar(&o.CommonName, "common-name", "", "the subject common name, for people reading the certificate (default: the first --dns, --ip or --uri)")
	f.StringSliceVar(&o.DNSNames, "dns", nil, "a DNS name the certificate certifies (repeat or comma-separate): the names a server is dialed by, or a client identity that servers' allow-lists name")
	f.IPSliceVar(&o.IPs, "ip", nil, "an IP address the certificate certifies (repeat or comma-separate), for servers dialed by address")
	f.StringSliceVar(&uris, "uri", nil, "a URI identity the certificate certifies (repeat or comma-separate), such as spiffe://example.com/glb")
	f.StringVar(&usage, "usage", "server", "what the certificate authenticates: server, client (mutual TLS), or both")
	f.DurationVar(&o.TTL, "ttl", tlsx.DefaultCertTTL, "how long the certificate is valid (cut to the CA's own expiry); issue again before it ends")
	_ = cmd.MarkFlagRequired("out-dir")
	return cmd
}

// describeIssued says what was written, read back from dir.
func describeIssued(cmd *cobra.Command, dir string) error {
	b, err := tlsx.Dir(dir).Read()
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", dir, err)
	}
	leaf := pair.Leaf
	names := tlsx.Identities(leaf)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Certificate %q (serial %s) for %s, usage %v, written to %s, valid until %s.\n",
		leaf.Subject.CommonName, leaf.SerialNumber.Text(16), strings.Join(names, ", "), usageOf(leaf), dir, leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

func usageOf(c *x509.Certificate) string {
	var u []string
	for _, e := range c.ExtKeyUsage {
		switch e {
		case x509.ExtKeyUsageServerAuth:
			u = append(u, "server")
		case x509.ExtKeyUsageClientAuth:
			u = append(u, "client")
		}
	}
	return strings.Join(u, "+")
}
