using System.Threading.Channels;
using Grpc.Core;
using RayClient.Server.Protocol;

namespace RayClient.Server.Services;

/// <summary>
/// Forwards what a client's tasks print as <c>LogData</c>: stdout lines with level -1 and name
/// <c>stdout</c>, stderr lines with -2 and <c>stderr</c> (Ray: <c>logservicer.py</c>, spec §10). Settings requests switch forwarding on and off.
/// </summary>
internal sealed class LogStreamerService : RayletLogStreamer.RayletLogStreamerBase
{
    private readonly ServerState _state;

    public LogStreamerService(ServerState state) => _state = state;

    public override async Task Logstream(IAsyncStreamReader<LogSettingsRequest> requestStream, IServerStreamWriter<LogData> responseStream, ServerCallContext context)
    {
        var clientId = context.RequestHeaders.GetValue("client_id");
        if (string.IsNullOrEmpty(clientId))
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, "Missing 'client_id' metadata."));
        }

        var lines = Channel.CreateBounded<LogData>(new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        // Ray clients send enabled=true first; forwarding starts at once so nothing printed
        // between the subscription and that request is lost.
        var enabled = true;
        using var subscription = _state.Logs.Subscribe(clientId, (text, level) =>
        {
            if (Volatile.Read(ref enabled))
            {
                lines.Writer.TryWrite(new LogData { Msg = text, Level = level, Name = level == -1 ? "stdout" : "stderr" });
            }
        });
        // The stream also ends when the server stops, so stopping never waits for idle log streams.
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _state.Stopping);
        var settings = Task.Run(async () =>
        {
            while (await requestStream.MoveNext(ended.Token).ConfigureAwait(false))
            {
                Volatile.Write(ref enabled, requestStream.Current.Enabled);
            }
        });
        try
        {
            await foreach (var line in lines.Reader.ReadAllAsync(ended.Token).ConfigureAwait(false))
            {
                await responseStream.WriteAsync(line, ended.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }

        try
        {
            await settings.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or RpcException)
        {
        }
    }
}
