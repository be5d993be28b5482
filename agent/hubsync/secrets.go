package hubsync

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"meridian.dev/meridian/hub/membership"
)

// readBundle reads the bundle in Secret key; a NotFound error when the
// Secret is not there.
func (s *Syncer) readBundle(ctx context.Context, key types.NamespacedName) (membership.Bundle, error) {
	sec := &corev1.Secret{}
	if err := s.local.Get(ctx, key, sec); err != nil {
		return membership.Bundle{}, err
	}
	b, err := membership.ParseBundle(sec.Data[SecretKey])
	if err != nil {
		return membership.Bundle{}, fmt.Errorf("secret %s, key %s: %w", key, SecretKey, err)
	}
	return b, nil
}

// WriteBundle stores b in Secret key of the member cluster c (creating
// its namespace if needed), under SecretKey.
func WriteBundle(ctx context.Context, c client.Client, key types.NamespacedName, b membership.Bundle) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	write := func() error {
		_, err := controllerutil.CreateOrUpdate(ctx, c, sec, func() error {
			sec.Type = corev1.SecretTypeOpaque
			sec.Data = map[string][]byte{SecretKey: data}
			return nil
		})
		return err
	}
	err = write()
	if apierrors.IsNotFound(err) {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: key.Namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating namespace %s: %w", key.Namespace, err)
		}
		err = write()
	}
	if err != nil {
		return fmt.Errorf("secret %s: %w", key, err)
	}
	return nil
}
