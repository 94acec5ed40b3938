using System.Buffers;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using System.Text;

namespace RayClient.Jobs;

public sealed partial class JobSubmissionClient
{
    /// <summary>
    /// Follows the job's log over the WebSocket <c>/api/jobs/{id}/logs/tail</c>, from its start,
    /// and ends when the job has ended and the log is read out. Items are text chunks as the
    /// server sends them (up to 10 lines; the last line may be cut), not lines: print them as
    /// they come, without adding newlines.
    /// </summary>
    /// <remarks>
    /// When the stream closes or breaks while the job has not ended, the client reconnects and skips
    /// what it already returned (the server always starts from the beginning), within the retry
    /// policy; cancelling <paramref name="cancellationToken"/> stops following and leaves the job running.
    /// </remarks>
    /// <exception cref="RayJobNotFoundException">No such job.</exception>
    /// <exception cref="RayConnectionException">The stream broke and could not be reopened.</exception>
    public async IAsyncEnumerable<string> TailJobLogsAsync(string jobId, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var path = JobPath(jobId) + "/logs/tail";
        await EnsureVersionAsync(cancellationToken).ConfigureAwait(false);
        var uri = new Uri((_base.StartsWith("https:", StringComparison.OrdinalIgnoreCase) ? "wss:" + _base[6..] : "ws:" + _base[5..]) + path);
        long delivered = 0;
        var failures = 0;
        var start = _time.GetTimestamp();
        var buffer = new ArrayBufferWriter<byte>(16 * 1024);
        while (true)
        {
            long toSkip = delivered;
            string? failure = null;
            using (var socket = new ClientWebSocket())
            {
                var connected = await ConnectLogSocketAsync(socket, uri, jobId, cancellationToken).ConfigureAwait(false);
                if (connected is not null)
                {
                    failure = connected;
                }
                else
                {
                    while (true)
                    {
                        var (text, closed, error) = await ReceiveTextAsync(socket, buffer, cancellationToken).ConfigureAwait(false);
                        if (error is not null)
                        {
                            failure = error;
                            break;
                        }

                        if (closed)
                        {
                            break;
                        }

                        if (toSkip >= text!.Length)
                        {
                            toSkip -= text.Length;
                            continue;
                        }

                        if (toSkip > 0)
                        {
                            text = text[(int)toSkip..];
                            toSkip = 0;
                        }

                        delivered += text.Length;
                        failures = 0;
                        start = _time.GetTimestamp();
                        yield return text;
                    }
                }
            }

            // A normal close comes after the job ended; anything else (or a close while it still
            // runs) means the stream broke: look at the job, and follow on if it has not ended.
            var info = await GetJobInfoAsync(jobId, cancellationToken).ConfigureAwait(false);
            if (failure is null && info.Status.IsTerminal())
            {
                yield break;
            }

            failures++;
            if (failures > _retry.MaxRetryAttempts || _time.GetElapsedTime(start) >= _retry.Budget)
            {
                throw new RayConnectionException(
                    $"The log stream of job '{jobId}' ({info.Status.ToWireName()}) {(failure is null ? "closed before the job ended" : "broke: " + failure)}, and reconnecting did not help.",
                    isTransient: true);
            }

            JobsLog.LogTailReconnect(_logger, jobId, info.Status.ToWireName(), failure ?? "closed", failures);
            var delay = TimeSpan.FromTicks(Math.Min(_retry.MaxDelay.Ticks, _retry.InitialDelay.Ticks << Math.Min(failures - 1, 16)));
            await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Opens the WebSocket; null on success, a reason for a transient failure, or throws the mapped HTTP error.</summary>
    private async Task<string?> ConnectLogSocketAsync(ClientWebSocket socket, Uri uri, string jobId, CancellationToken cancellationToken)
    {
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.KeepAliveInterval = TimeSpan.FromSeconds(15);
        socket.Options.KeepAliveTimeout = TimeSpan.FromSeconds(30);
        foreach (var (name, value) in _headers)
        {
            socket.Options.SetRequestHeader(name, value);
        }

        using var deadline = new CancellationTokenSource(_options.RequestTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            if (_handler is not null)
            {
                using var invoker = new HttpMessageInvoker(_handler, disposeHandler: false);
                await socket.ConnectAsync(uri, invoker, linked.Token).ConfigureAwait(false);
            }
            else
            {
                await socket.ConnectAsync(uri, linked.Token).ConfigureAwait(false);
            }

            return null;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return $"no answer within {_options.RequestTimeout.TotalSeconds:0.###} s";
        }
        catch (WebSocketException) when (socket.HttpStatusCode != 0)
        {
            var status = (int)socket.HttpStatusCode;
            if (IsTransientStatus(socket.HttpStatusCode))
            {
                return $"HTTP {status}";
            }

            // The server answered the handshake with an error (404 unknown job, 400 DRIVER job, 401/403).
            // (.NET does not expose the refused handshake's body.)
            throw JobsErrors.FromResponse(status, null, "follow job logs", jobId);
        }
        catch (WebSocketException e)
        {
            return e.InnerException is HttpRequestException inner ? Reason(inner) : e.Message;
        }
        catch (HttpRequestException e)
        {
            return Reason(e);
        }
    }

    /// <summary>One whole text message (fragments joined, no size cap), a close, or the reason the stream broke.</summary>
    private static async Task<(string? Text, bool Closed, string? Error)> ReceiveTextAsync(ClientWebSocket socket, ArrayBufferWriter<byte> buffer, CancellationToken cancellationToken)
    {
        buffer.ResetWrittenCount();
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer.GetMemory(8192), cancellationToken).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    if (socket.State == WebSocketState.CloseReceived)
                    {
                        using var closeDeadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                        closeDeadline.CancelAfter(TimeSpan.FromSeconds(5));
                        try
                        {
                            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, closeDeadline.Token).ConfigureAwait(false);
                        }
                        catch (Exception e) when (e is WebSocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
                        {
                        }
                    }

                    // Ray closes with 1000 once the job has ended; the caller checks the job either way.
                    return (null, true, null);
                }

                buffer.Advance(result.Count);
                if (result.EndOfMessage)
                {
                    return (Encoding.UTF8.GetString(buffer.WrittenSpan), false, null);
                }
            }
        }
        catch (WebSocketException e)
        {
            return (null, false, e.Message);
        }
    }
}
