using Google.Protobuf;
using Ray.Rpc;
using RayClient.Serialization;

namespace RayClient.Session;

/// <summary>
/// The object requests of a session as Ray's client sends them (ray:python/ray/util/client/worker.py
/// _put_pickled, _async_get_object, wait, _release): put, get and release on the Datapath, wait as a
/// unary call. <see cref="RaySession"/> validates arguments and turns ids into refs around it.
/// </summary>
internal sealed class ObjectRequests
{
    private readonly RayConnection _connection;

    public ObjectRequests(RayConnection connection)
    {
        _connection = connection;
    }

    /// <summary>Puts a pickled value; returns its object id.</summary>
    /// <exception cref="RayException">The server refused the value.</exception>
    public async Task<RayId> PutAsync(PickledData payload, CancellationToken cancellationToken)
    {
        var response = await _connection.SendAsync(new DataRequest { Put = new PutRequest() }, payload).WaitAsync(cancellationToken).ConfigureAwait(false);
        var put = response.Put;
        if (!put.Valid)
        {
            throw RayErrors.FromPythonError(PythonErrorDecoder.Decode(put.Error.Memory), "Put failed on the server");
        }

        return new RayId(put.Id.ToByteArray());
    }

    /// <summary>
    /// Starts an asynchronous get on the Datapath (Ray's <c>await ref</c>, spec §3.5): pipelined with
    /// everything else, answered when the object is ready, resumable after a reconnect.
    /// </summary>
    public PendingGet StartGet(RayId id)
    {
        var request = new DataRequest { Get = new GetRequest { Asynchronous = true, StartChunkId = 0 } };
        request.Get.Ids.Add(UnsafeByteOperations.UnsafeWrap(id.Bytes));
        return _connection.Enqueue(new PendingGet(request));
    }

    /// <summary>Gives up on a get (timeout, cancellation): its answer, if any, is dropped.</summary>
    public void Abandon(PendingGet pending, Exception reason) => _connection.Abandon(pending, reason);

    /// <summary>Ray's <c>ray.wait</c>: which of <paramref name="ids"/> are ready, in the server's order.</summary>
    public async Task<IReadOnlyList<RayId>> WaitAsync(IReadOnlyList<RayId> ids, int numReturns, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var request = new WaitRequest { NumReturns = numReturns, Timeout = timeout?.TotalSeconds ?? -1, ClientId = _connection.ClientId };
        foreach (var id in ids)
        {
            request.ObjectIds.Add(UnsafeByteOperations.UnsafeWrap(id.Bytes));
        }

        var response = await _connection.CallUnaryAsync(o => _connection.Driver.WaitObjectAsync(request, o).ResponseAsync, cancellationToken).ConfigureAwait(false);
        return [.. response.ReadyObjectIds.Select(id => new RayId(id.ToByteArray()))];
    }

    /// <summary>Releases one id on the server; a closed session has nothing left to release.</summary>
    public async Task ReleaseAsync(RayId id)
    {
        if (!_connection.IsUsable)
        {
            return;
        }

        var request = new ReleaseRequest();
        request.Ids.Add(UnsafeByteOperations.UnsafeWrap(id.Bytes));
        try
        {
            await _connection.SendAsync(new DataRequest { Release = request }).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ObjectDisposedException or RayException)
        {
            // The session ended meanwhile: the server dropped everything at cleanup.
        }
    }
}
