package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/hubsync"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub"
	"meridian.dev/meridian/hub/membership"
	"meridian.dev/meridian/internal/scheme"
)

func memberCommand() *cobra.Command {
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "member",
		Short: "Add, rotate, revoke and list the fleet's members (run against the hub cluster)",
		Long: `member manages the fleet's members. In pull mode (the default of 'member
add') the member's agent reaches the hub itself, so the hub holds no
credential for it and it may sit behind NAT: 'member add' registers it and
prints its join bundle, a short-lived bootstrap token the member exchanges
for its own credential ('meridian join', or the agent with --membership
pull). In push mode ('member add --member-kubeconfig') the hub reaches the
member with a least-privilege ServiceAccount created there. docs/install.md
explains both modes and the RBAC each needs.`,
	}
	cmd.PersistentFlags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the hub cluster, with rights to manage namespaces, ServiceAccounts, RBAC and Meridian's objects (default: $KUBECONFIG, in-cluster config, or ~/.kube/config)")
	hubClient := func() (client.Client, *rest.Config, error) {
		cfg, err := restConfig(kubeconfig)
		if err != nil {
			return nil, nil, err
		}
		c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
		if err != nil {
			return nil, nil, fmt.Errorf("hub cluster: %w", err)
		}
		return c, cfg, nil
	}
	cmd.AddCommand(memberAddCommand(hubClient, false), memberAddCommand(hubClient, true), memberRevokeCommand(hubClient), memberListCommand(hubClient))
	return cmd
}

type hubClientFunc func() (client.Client, *rest.Config, error)

// memberAddCommand is `member add`, or with rotate `member rotate`: revoke
// every credential of the member, then add it again.
func memberAddCommand(hubClient hubClientFunc, rotate bool) *cobra.Command {
	var (
		o                           membership.AddOptions
		region, cost, out           string
		memberKubeconfig, membersNS string
		labels                      []string
	)
	use, short := "add NAME", "Register a pull member and write its join bundle (a secret: hand it to the member's operator), or with --member-kubeconfig a push member"
	example := `  meridian member add eu-west-1 --region eu-west --label tier=gold --hub-server https://hub.example.com:6443 -o eu-west-1.join.json
  # on the member: meridian join --bundle eu-west-1.join.json --kubeconfig member.kubeconfig
  meridian member add eu-west-2 --region eu-west --member-kubeconfig eu-west-2-admin.kubeconfig   # push mode`
	if rotate {
		use, short = "rotate NAME", "Revoke every credential of a pull member and write a new join bundle"
		example = `  meridian member rotate eu-west-1 -o eu-west-1.join.json
  # on the member: replace the join Secret, or meridian join --bundle eu-west-1.join.json`
	}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cfg, err := hubClient()
			if err != nil {
				return err
			}
			o.Name = args[0]
			if rotate {
				existing := &v1.Cluster{}
				if err := c.Get(cmd.Context(), client.ObjectKey{Name: o.Name}, existing); err != nil {
					return fmt.Errorf("member %s: %w", o.Name, err)
				}
				if m := existing.Labels[membership.MembershipLabel]; m != "pull" && m != "revoked" {
					return fmt.Errorf("member %s is not a pull member: rotate a push member's token with `meridian member add %s --member-kubeconfig FILE` again", o.Name, o.Name)
				}
				if err := membership.Revoke(cmd.Context(), c, o.Name); err != nil {
					return err
				}
				o.Identity = existing.Spec.ClusterIdentity
			} else if o.Identity.Region = v1.RegionName(region); region == "" {
				return fmt.Errorf("--region is required")
			}
			if o.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			if cost != "" {
				q, err := resource.ParseQuantity(cost)
				if err != nil {
					return fmt.Errorf("--cost-per-gpu-hour: %w", err)
				}
				o.CostPerGPUHour = &q
			}
			if o.Server == "" {
				o.Server = cfg.Host
			}
			if len(o.CAData) == 0 {
				if o.CAData = cfg.CAData; len(o.CAData) == 0 && cfg.CAFile != "" {
					if o.CAData, err = os.ReadFile(cfg.CAFile); err != nil {
						return fmt.Errorf("the hub's CA: %w", err)
					}
				}
			}
			if memberKubeconfig != "" {
				return addPush(cmd, c, o, memberKubeconfig, membersNS)
			}
			b, err := membership.Add(cmd.Context(), c, o)
			if err != nil {
				return err
			}
			return writeJSON(out, b, fmt.Sprintf("join bundle for member %s (expires %s)", o.Name, b.Expires.Format(time.RFC3339)))
		},
	}
	fs := cmd.Flags()
	if !rotate {
		fs.StringVar(&region, "region", "", "region of the member, e.g. eu-west (required); the hub keeps it whatever the member reports")
		fs.StringVar(&o.Identity.Zone, "zone", "", "zone of the member within its region")
		fs.StringArrayVar(&labels, "label", nil, "label of the member's Cluster for placement policies, as KEY=VALUE (repeatable)")
		fs.StringVar(&o.Provider, "provider", "", "who runs the cluster, e.g. aws, gcp, on-prem")
		fs.StringVar(&cost, "cost-per-gpu-hour", "", "price of one GPU-hour there, e.g. 2.50")
		fs.StringVar(&memberKubeconfig, "member-kubeconfig", "", "push mode instead of pull: an admin kubeconfig of the member, used once to create the hub's least-privilege ServiceAccount there (ClusterRole "+membership.PushRole+"); the hub keeps a kubeconfig with that ServiceAccount's token, never this one")
		fs.StringVar(&membersNS, "members-namespace", hub.MembersNamespace, "push mode: namespace of the hub's member kubeconfig Secrets (the hub's --members-namespace)")
		fs.DurationVar(&o.TTL, "ttl", membership.DefaultBootstrapTTL, "pull: how long the join bundle's bootstrap token works (at least 10m); push: how long the hub's token on the member works (default a year)")
	} else {
		fs.DurationVar(&o.TTL, "ttl", membership.DefaultBootstrapTTL, "how long the join bundle's bootstrap token works (at least 10m)")
	}
	fs.StringVar(&o.Server, "hub-server", "", "the hub's API server URL as the member reaches it (default: the server of --kubeconfig)")
	fs.StringVarP(&out, "output", "o", "-", "file to write the join bundle to (mode 0600); - is standard output")
	return cmd
}

// addPush is `member add --member-kubeconfig`: the member's admin
// kubeconfig grants the hub a least-privilege ServiceAccount there.
func addPush(cmd *cobra.Command, hubC client.Client, o membership.AddOptions, memberKubeconfig, membersNS string) error {
	cfg, err := restConfig(memberKubeconfig)
	if err != nil {
		return err
	}
	member, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return fmt.Errorf("member cluster: %w", err)
	}
	if o.TTL == membership.DefaultBootstrapTTL {
		o.TTL = membership.DefaultPushTokenTTL
	}
	o.Server, o.CAData, o.TLSServerName = cfg.Host, cfg.CAData, cfg.ServerName
	if len(o.CAData) == 0 && cfg.CAFile != "" {
		if o.CAData, err = os.ReadFile(cfg.CAFile); err != nil {
			return fmt.Errorf("the member's CA: %w", err)
		}
	}
	if err := membership.AddPush(cmd.Context(), hubC, member, membersNS, o); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "member %s added in push mode: the hub reaches %s as %s/%s (ClusterRole %s), token valid for %s\n",
		o.Name, o.Server, membership.PushNamespace, membership.PushServiceAccount, membership.PushRole, o.TTL)
	return nil
}

func parseLabels(specs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range specs {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want KEY=VALUE", s)
		}
		out[k] = v
	}
	return out, nil
}

// writeJSON writes v to path (0600), or to standard output for "-".
func writeJSON(path string, v any, what string) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote the %s to %s\n", what, path)
	return nil
}

func memberRevokeCommand(hubClient hubClientFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "End a pull member's access: its credentials are refused at once and its models placed elsewhere",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := hubClient()
			if err != nil {
				return err
			}
			if err := membership.Revoke(cmd.Context(), c, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "member %s revoked: its tokens are refused; its replicas keep serving until its operator stops them. `meridian member rotate %s` lets it rejoin.\n", args[0], args[0])
			return nil
		},
	}
}

func memberListCommand(hubClient hubClientFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the fleet's members: membership, region, health, last heartbeat",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := hubClient()
			if err != nil {
				return err
			}
			var list v1.ClusterList
			if err := c.List(cmd.Context(), &list); err != nil {
				return err
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tMEMBERSHIP\tREGION\tHEALTH\tHEARTBEAT")
			for _, cl := range list.Items {
				mode := cl.Labels[membership.MembershipLabel]
				if mode == "" {
					mode = "push"
				}
				hb := "-"
				if cl.Status.LastHeartbeat != nil {
					hb = time.Since(cl.Status.LastHeartbeat.Time).Round(time.Second).String() + " ago"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", cl.Name, mode, cl.Spec.Region, cl.Status.Health, hb)
			}
			return w.Flush()
		},
	}
}

func joinCommand() *cobra.Command {
	var kubeconfig, bundle, namespace, secret string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "join",
		Short: "Join this member cluster to the hub with a join bundle (pull mode)",
		Long: `join exchanges the bootstrap token in a join bundle from 'meridian member
add' for the member's own credential on the hub, and stores it in the
member cluster's Secret the agent reads (--membership pull). The bundle
is then spent: keep it no longer. A bad, expired or revoked bundle is
refused, and nothing is written.`,
		Example: `  meridian join --bundle eu-west-1.join.json --kubeconfig member.kubeconfig`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := os.ReadFile(bundle)
			if err != nil {
				return fmt.Errorf("--bundle: %w", err)
			}
			b, err := membership.ParseBundle(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", bundle, err)
			}
			cfg, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
			if err != nil {
				return fmt.Errorf("member cluster: %w", err)
			}
			cred, err := membership.Exchange(cmd.Context(), b, ttl)
			if err != nil {
				return err
			}
			key := types.NamespacedName{Namespace: namespace, Name: secret}
			if err := hubsync.WriteBundle(cmd.Context(), c, key, cred); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "member %s joined hub %s; credential in Secret %s (expires %s, the agent renews it)\n",
				cred.Member, cred.Server, key, cred.Expires.Format(time.RFC3339))
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of this member cluster (default: $KUBECONFIG, in-cluster config, or ~/.kube/config)")
	fs.StringVar(&bundle, "bundle", "", "the join bundle file from 'meridian member add' (required)")
	fs.StringVar(&namespace, "namespace", hubsync.DefaultNamespace, "namespace of the credential Secret in this member cluster")
	fs.StringVar(&secret, "credential-secret", hubsync.DefaultCredentialSecret, "name of the credential Secret the agent reads")
	fs.DurationVar(&ttl, "token-ttl", membership.DefaultAgentTokenTTL, "lifetime of the member's credential; the agent renews it after 80%")
	_ = cmd.MarkFlagRequired("bundle")
	return cmd
}
