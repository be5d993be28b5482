package inventory

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	cpv1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// ManagerName is the cluster manager name Meridian writes into the
// ClusterProfiles it publishes: their spec.clusterManager.name and their
// x-k8s.io/cluster-manager label (cpv1.LabelClusterManagerKey).
const ManagerName = "meridian"

// DefaultNamespace is where `meridian hub` publishes and imports
// ClusterProfiles unless told otherwise.
const DefaultNamespace = "meridian-system"

// Labels and annotations on the Clusters Meridian imports.
const (
	// ImportedFromLabel marks a Cluster imported from a ClusterProfile;
	// its value is the profile's cluster manager, e.g.
	// "open-cluster-management". Meridian never publishes such a Cluster.
	ImportedFromLabel = "meridian.dev/imported-from"
	// ImportedProfileAnnotation names the ClusterProfile ("namespace/name")
	// an imported Cluster comes from.
	ImportedProfileAnnotation = "meridian.dev/imported-profile"
)

// Options say what Setup runs. The zero value runs nothing.
type Options struct {
	// Namespace holds the ClusterProfiles: the ones Meridian publishes and
	// the ones it imports (a cluster inventory is one namespace; bind your
	// cluster manager's cluster set to it). Default DefaultNamespace.
	Namespace string
	// Export publishes one ClusterProfile per Meridian Cluster, kept in
	// step with the Cluster and deleted with it.
	Export bool
	// Import turns the ClusterProfiles of other cluster managers into
	// Meridian Clusters that placement can choose.
	Import bool
}

// Setup adds the exporter and the importer that opts ask for to mgr, the
// hub cluster's manager (multicluster-runtime's GetLocalManager()). It
// fails, saying what to do, when the hub cluster lacks the ClusterProfile
// CRD or the namespace. ClusterProfiles are watched in that one namespace
// only, so the hub needs no cluster-wide access to them.
func Setup(ctx context.Context, mgr manager.Manager, opts Options) error {
	if !opts.Export && !opts.Import {
		return nil
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if err := preflight(ctx, mgr, opts.Namespace); err != nil {
		return err
	}
	profiles, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient:        mgr.GetHTTPClient(),
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: map[string]cache.Config{opts.Namespace: {}},
	})
	if err != nil {
		return fmt.Errorf("creating the ClusterProfile cache: %w", err)
	}
	if err := mgr.Add(profiles); err != nil {
		return err
	}
	s := &syncer{
		client:    mgr.GetClient(),
		profiles:  profiles,
		namespace: opts.Namespace,
		events:    mgr.GetEventRecorder("meridian-hub"),
	}
	if opts.Export {
		if err := s.setupExport(mgr); err != nil {
			return fmt.Errorf("setting up the ClusterProfile exporter: %w", err)
		}
	}
	if opts.Import {
		if err := s.setupImport(mgr); err != nil {
			return fmt.Errorf("setting up the ClusterProfile importer: %w", err)
		}
	}
	return nil
}

// preflight checks what Setup needs on the hub cluster.
func preflight(ctx context.Context, mgr manager.Manager, namespace string) error {
	gvk := cpv1.ClusterProfileSchemeGroupVersionKind
	if _, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
		if meta.IsNoMatchError(err) {
			return errors.New("the hub cluster has no ClusterProfile CRD (clusterprofiles.multicluster.x-k8s.io/v1alpha1): " +
				"install config/crd/bases/multicluster.x-k8s.io_clusterprofiles.yaml of sigs.k8s.io/cluster-inventory-api v0.1.2, " +
				"or run the hub without --export-cluster-profiles and --import-cluster-profiles")
		}
		return fmt.Errorf("looking up the ClusterProfile API on the hub cluster: %w", err)
	}
	err := mgr.GetAPIReader().Get(ctx, client.ObjectKey{Name: namespace}, &corev1.Namespace{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("namespace %s, where ClusterProfiles are published and imported, does not exist on the hub cluster: "+
			"create it (kubectl create namespace %s) or name another with --cluster-profile-namespace", namespace, namespace)
	}
	if err != nil {
		return fmt.Errorf("reading namespace %s on the hub cluster: %w", namespace, err)
	}
	return nil
}

// controllerOptions let a hub restarted in the same process (tests, the
// hub-loss drill) register its controllers again.
var controllerOptions = controller.Options{SkipNameValidation: ptr.To(true)}

// isMeridians reports whether Meridian manages profile p: by its spec or
// by its label, so that neither alone can make Meridian import its own.
func isMeridians(p *cpv1.ClusterProfile) bool {
	return p.Spec.ClusterManager.Name == ManagerName || p.Labels[cpv1.LabelClusterManagerKey] == ManagerName
}
