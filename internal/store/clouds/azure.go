//go:build !noazure

package clouds

import (
	_ "gocloud.dev/blob/azureblob" // azblob://

	"github.com/crs-tool/crs/internal/store"
)

func init() { store.Register("azblob", byBlob) }
