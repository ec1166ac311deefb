// hfs-resilient-uploader: resumable uploads to hmac-file-server.
//
//   import { ResilientUploader } from './client/js/src/index.js'
//   const up = new ResilientUploader(file, signedPutUrl, { onProgress })
//   const { status, url } = await up.upload()
export { ResilientUploader, UploadError, newSessionId, getUrlOf } from './uploader.js'
export { memoryStorage, webStorage, fileStorage, defaultStorage } from './storage.js'
export { parseRanges, formatRanges, normalize, addRange, heldBytes, missingRanges,
  planChunks, backoffDelay, parseRetryAfter, isFinalStatus } from './ranges.js'
export { Sha256 } from './sha256.js'
