using Google.Protobuf;
using Ray.Rpc;

namespace RayClient.Session;

/// <summary>Stores runtime-env packages through Ray's KV RPCs, before Init (spec §8.6).</summary>
internal sealed class KvPackageStore : RayClient.Packaging.IRuntimeEnvPackageStore
{
    private readonly RayConnection _session;

    public KvPackageStore(RayConnection connection) => _session = connection;

    public async Task PinAsync(string uri, int expirationSeconds, CancellationToken cancellationToken)
    {
        var request = new ClientPinRuntimeEnvURIRequest { Uri = uri, ExpirationS = expirationSeconds };
        await _session.Driver.PinRuntimeEnvURIAsync(request, _session.UnaryOptions(cancellationToken)).ResponseAsync.ConfigureAwait(false);
    }

    public async Task<bool> ExistsAsync(string uri, CancellationToken cancellationToken)
    {
        var request = new KVExistsRequest { Key = ByteString.CopyFromUtf8(uri) };
        var response = await _session.Driver.KVExistsAsync(request, _session.UnaryOptions(cancellationToken)).ResponseAsync.ConfigureAwait(false);
        return response.Exists;
    }

    public async Task PutAsync(string uri, ReadOnlyMemory<byte> zip, CancellationToken cancellationToken)
    {
        var request = new KVPutRequest { Key = ByteString.CopyFromUtf8(uri), Value = UnsafeByteOperations.UnsafeWrap(zip), Overwrite = true };
        await _session.Driver.KVPutAsync(request, _session.UnaryOptions(cancellationToken)).ResponseAsync.ConfigureAwait(false);
    }
}
