//go:build !nogcs

package clouds

import (
	_ "gocloud.dev/blob/gcsblob" // gs://

	"github.com/crs-tool/crs/internal/store"
)

func init() { store.Register("gs", byBlob) }
