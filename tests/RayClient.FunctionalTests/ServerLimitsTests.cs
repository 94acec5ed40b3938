using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Ray.Rpc;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Serialization;
using RayClient.Server;

namespace RayClient.FunctionalTests;

/// <summary>Nothing a client sends can exhaust the embedded server: each limit refuses clearly and keeps what was accepted.</summary>
public sealed class ServerLimitsTests
{
    private const int MiB = 1024 * 1024;

    [Fact]
    public async Task Init_GracePeriodOverTheServerMaximum_GetsTheMaximum()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1 });
        await using var ray = await RaySession.ConnectAsync(new RaySessionOptions { Address = server.Address, ReconnectGracePeriod = TimeSpan.FromSeconds(3600) });

        var session = Assert.Single(server.State.Sessions);

        Assert.Equal(300, session.GraceSeconds);
    }

    [Fact]
    public async Task KVPut_ValueOverRaysLimit_IsRefusedWithRaysError_AndAValueAtTheLimitIsStored()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, MaxKvValueSize = MiB });
        await using var ray = await RaySession.ConnectAsync(new RaySessionOptions { Address = server.Address });

        var error = await Assert.ThrowsAsync<RpcException>(() => KvPutAsync(ray, "big", MiB + 1));

        // Ray's client server: ABORTED, the details are the base64 of the pickled exception.
        Assert.Equal(StatusCode.Aborted, error.StatusCode);
        var python = PythonErrorDecoder.Decode(Convert.FromBase64String(error.Status.Detail));
        Assert.Equal("ray.exceptions.RpcError", python.TypeName);
        Assert.Contains($"Sent message larger than max ({MiB + 1} vs. {MiB})", python.Message, StringComparison.Ordinal);
        Assert.Null(server.State.Kv.Get("big"u8.ToArray(), null));

        await KvPutAsync(ray, "fits", MiB);
        Assert.Equal(MiB, server.State.Kv.Get("fits"u8.ToArray(), null)!.Length);

        // Far over the limit: refused by its length prefix, before the server buffers it.
        var huge = await Assert.ThrowsAsync<RpcException>(() => KvPutAsync(ray, "huge", 8 * MiB));
        Assert.Equal(StatusCode.ResourceExhausted, huge.StatusCode);
    }

    [Fact]
    public async Task ChunkedPut_UnfinishedBeyondTheSessionCap_IsRefusedWithAClearError_AndItsMemoryIsReleased()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, MaxPendingUploadBytesPerSession = 8 * MiB });
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{server.Port}");
        using var datapath = new RayletDataStreamer.RayletDataStreamerClient(channel)
            .Datapath(new Metadata { { "client_id", Guid.NewGuid().ToString("N") } });
        var chunk = ByteString.CopyFrom(new byte[4 * MiB]);

        // Two of ten 4 MiB chunks: 8 MiB held, within the cap.
        for (var i = 0; i < 2; i++)
        {
            await datapath.RequestStream.WriteAsync(PutChunk(1, i, 10, chunk));
        }

        await Eventually.TrueAsync(() => server.State.Uploads.HeldBytes == 8 * MiB, "the first 8 MiB are held");

        // The third goes over: everything of that upload is dropped at once, long before it ends.
        await datapath.RequestStream.WriteAsync(PutChunk(1, 2, 10, chunk));
        await Eventually.TrueAsync(() => server.State.Uploads.HeldBytes == 0, "the refused upload's chunks are released");

        for (var i = 3; i < 10; i++)
        {
            await datapath.RequestStream.WriteAsync(PutChunk(1, i, 10, chunk));
        }

        Assert.True(await datapath.ResponseStream.MoveNext(CancellationToken.None));
        var refused = datapath.ResponseStream.Current;
        Assert.Equal(1, refused.ReqId);
        Assert.False(refused.Put.Valid);
        var message = PythonErrorDecoder.Decode(refused.Put.Error.Memory).Message;
        Assert.Contains("MaxPendingUploadBytesPerSession", message, StringComparison.Ordinal);
        Assert.Contains($"at most {8 * MiB} bytes", message, StringComparison.Ordinal);

        // The session goes on: a put within the cap is stored.
        await datapath.RequestStream.WriteAsync(PutChunk(2, 0, 1, ByteString.CopyFrom(PickleWriter.SerializeToArray("still here", new PickleWriterOptions()))));
        Assert.True(await datapath.ResponseStream.MoveNext(CancellationToken.None));
        Assert.True(datapath.ResponseStream.Current.Put.Valid);
        // Request 2 was answered, so the server has read chunks 3-9 of the refused upload before it: none was kept.
        Assert.Equal(0, server.State.Uploads.HeldBytes);
        await datapath.RequestStream.CompleteAsync();
    }

    [Fact]
    public async Task ChunkedPuts_OfManySessionsBeyondTheServerCap_AreRefused()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, MaxPendingUploadBytes = 8 * MiB });
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{server.Port}");
        // A real pickle (a 3 MiB bytes value) in two chunks: 3 MiB, then the pickle's last bytes.
        var pickle = PickleWriter.SerializeToArray(new byte[3 * MiB], new PickleWriterOptions());
        var chunk = ByteString.CopyFrom(pickle, 0, 3 * MiB);
        var rest = ByteString.CopyFrom(pickle, 3 * MiB, pickle.Length - (3 * MiB));
        var streams = new List<AsyncDuplexStreamingCall<DataRequest, DataResponse>>();
        try
        {
            // Three clients each start an upload and never finish it: the third does not fit.
            for (var i = 0; i < 3; i++)
            {
                var stream = new RayletDataStreamer.RayletDataStreamerClient(channel).Datapath(new Metadata { { "client_id", Guid.NewGuid().ToString("N") } });
                streams.Add(stream);
                await stream.RequestStream.WriteAsync(PutChunk(1, 0, 2, chunk));
                if (i < 2)
                {
                    await Eventually.TrueAsync(() => server.State.Uploads.HeldBytes == (i + 1) * 3L * MiB, $"upload {i + 1} is held");
                }
            }

            await streams[2].RequestStream.WriteAsync(PutChunk(1, 1, 2, rest));
            Assert.True(await streams[2].ResponseStream.MoveNext(CancellationToken.None));
            Assert.False(streams[2].ResponseStream.Current.Put.Valid);
            Assert.Contains("MaxPendingUploadBytes", PythonErrorDecoder.Decode(streams[2].ResponseStream.Current.Put.Error.Memory).Message, StringComparison.Ordinal);
            Assert.Equal(6L * MiB, server.State.Uploads.HeldBytes);

            // What was accepted is not lost: the first upload finishes and is stored.
            await streams[0].RequestStream.WriteAsync(PutChunk(1, 1, 2, rest));
            Assert.True(await streams[0].ResponseStream.MoveNext(CancellationToken.None));
            var stored = streams[0].ResponseStream.Current.Put;
            Assert.True(stored.Valid, stored.Valid ? null : PythonErrorDecoder.Decode(stored.Error.Memory).Message);
        }
        finally
        {
            foreach (var stream in streams)
            {
                stream.Dispose();
            }
        }
    }

    [Fact]
    public async Task Put_BeyondTheObjectStore_ThrowsObjectStoreFull_AndNothingStoredBeforeIsLost()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, ObjectStoreMemory = 10 * MiB });
        await using var ray = await RaySession.ConnectAsync(new RaySessionOptions { Address = server.Address });
        var first = await ray.PutAsync(Filled(4 * MiB, 1));
        var second = await ray.PutAsync(Filled(4 * MiB, 2));

        var error = await Assert.ThrowsAsync<RayObjectStoreFullException>(() => ray.PutAsync(Filled(4 * MiB, 3)));

        Assert.Contains("ObjectStoreMemory", error.Message, StringComparison.Ordinal);
        Assert.Equal(Filled(4 * MiB, 1), await first);
        Assert.Equal(Filled(4 * MiB, 2), await second);

        // A task whose result does not fit fails with the same error; its worker and the job go on.
        var tooBig = ray.Call(PyFunction.Of<byte[]>("builtins", "bytearray"), 4 * MiB);
        await Assert.ThrowsAsync<RayObjectStoreFullException>(async () => await tooBig);

        // Released objects make room again.
        await first.DisposeAsync();
        await Eventually.TrueAsync(() => server.State.Store.UsedBytes <= 6 * MiB, "the released object's bytes are free");
        var third = await ray.PutAsync(Filled(4 * MiB, 3));
        Assert.Equal(Filled(4 * MiB, 3), await third);
    }

    private static async Task KvPutAsync(RaySession ray, string key, int size)
    {
        var request = new KVPutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFrom(new byte[size]), Overwrite = true };
        await ray.Connection.Driver.KVPutAsync(request, ray.Connection.UnaryOptions(CancellationToken.None)).ResponseAsync;
    }

    private static DataRequest PutChunk(int reqId, int chunkId, int totalChunks, ByteString data) =>
        new() { ReqId = reqId, Put = new PutRequest { ChunkId = chunkId, TotalChunks = totalChunks, Data = data } };

    private static byte[] Filled(int size, byte value)
    {
        var bytes = new byte[size];
        Array.Fill(bytes, value);
        return bytes;
    }
}
