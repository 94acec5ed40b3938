using System.Net.Sockets;
using Grpc.Core;
using RayClient.Serialization;

namespace RayClient.Session;

/// <summary>
/// Builds every exception message in one place, so each says what happened and what to do
/// (as StackExchange.Redis's ExceptionFactory).
/// </summary>
internal static class RayErrors
{
    public static RayConnectionException ClassifyConnectFailure(Exception error, RayAddress address, TimeSpan timeout, bool sentToken = false, bool usedTls = false)
    {
        if (error is RayConnectionException already)
        {
            return already;
        }

        if (FindInner<System.Security.Authentication.AuthenticationException>(error) is { } tls)
        {
            return new RayAuthenticationException(
                $"Could not connect to {address}: the TLS handshake failed ({tls.Message}). If the cluster uses a private CA, give its certificate " +
                "(RaySessionOptions.TlsCaCertificateFile or RAY_TLS_CA_CERT); if it requires mutual TLS, give a client certificate and key " +
                "(TlsCertificateFile/TlsKeyFile or RAY_TLS_SERVER_CERT/RAY_TLS_SERVER_KEY).", error);
        }

        var rpc = error as RpcException;
        if (FindInner<SocketException>(error) is { } socket)
        {
            return socket.SocketErrorCode switch
            {
                SocketError.ConnectionRefused => new RayConnectionException(
                    $"Could not connect to {address}: connection refused. Nothing listens on that port: check the address, and that the cluster runs its client server " +
                    $"(`ray start --head` serves it on port {RayAddress.DefaultPort}); or use the embedded LocalRayServer.", isTransient: true, error),
                SocketError.HostNotFound or SocketError.NoData or SocketError.TryAgain => new RayConnectionException(
                    $"Could not connect to {address}: the host name '{address.Host}' does not resolve.", isTransient: false, error),
                _ => new RayConnectionException(
                    $"Could not connect to {address}: {socket.Message}." +
                    // A TLS server drops a cleartext client at its first bytes: the client sees the
                    // handshake cut short, a reset or a broken pipe, depending on who writes first.
                    (!usedTls && socket.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown or SocketError.ConnectionAborted or SocketError.OperationAborted
                        || !usedTls && rpc?.Status.Detail.Contains("did not complete the HTTP/2 handshake", StringComparison.Ordinal) == true
                        ? " The server dropped the connection before HTTP/2 started: if it uses TLS, set RaySessionOptions.UseTls (or RAY_USE_TLS=1)."
                        : string.Empty),
                    isTransient: true,
                    error),
            };
        }

        if (rpc is { StatusCode: StatusCode.Unimplemented })
        {
            return new RayNotARayServerException(
                $"{address} speaks gRPC but does not serve ray.rpc.RayletDriver: it is not a Ray client server. " +
                $"Ray's client server listens on port {RayAddress.DefaultPort} of the head node (not the GCS port 6379 or the dashboard port 8265).", error);
        }

        if (rpc is { StatusCode: StatusCode.Internal or StatusCode.Unavailable or StatusCode.Unknown }
            && (FindInner<HttpRequestException>(error) is not null || FindInner<IOException>(error) is not null
                || rpc.Status.Detail.Contains("Bad gRPC response", StringComparison.Ordinal)
                || rpc.Status.Detail.Contains("HTTP/2", StringComparison.Ordinal)
                || rpc.Status.Detail.Contains("protocol", StringComparison.OrdinalIgnoreCase)))
        {
            if (usedTls && rpc.Status.Detail.Contains("did not complete the HTTP/2 handshake", StringComparison.Ordinal))
            {
                // TLS 1.3 servers check the client certificate after the client considers the handshake done:
                // a refused (or missing) certificate shows up as the connection closing before HTTP/2 starts.
                return new RayAuthenticationException(
                    $"{address} closed the connection right after the TLS handshake: it requires a client certificate it trusts (mutual TLS). " +
                    "Give one issued by the cluster's CA: RaySessionOptions.TlsCertificateFile and TlsKeyFile, or RAY_TLS_SERVER_CERT and RAY_TLS_SERVER_KEY with RAY_USE_TLS=1.", error);
            }

            if (rpc.Status.Detail.Contains("Bad gRPC response", StringComparison.Ordinal)
                || rpc.Status.Detail.Contains("did not complete the HTTP/2 handshake", StringComparison.Ordinal)
                || FindInner<HttpRequestException>(error) is { } http && (http.HttpRequestError is HttpRequestError.HttpProtocolError or HttpRequestError.InvalidResponse or HttpRequestError.ResponseEnded or HttpRequestError.VersionNegotiationError))
            {
                return new RayNotARayServerException(
                    $"{address} answered, but not as a Ray client server (not gRPC over HTTP/2: {rpc.Status.Detail}). " +
                    $"Check the port: Ray's client server listens on {RayAddress.DefaultPort} of the head node; the dashboard (8265) and the GCS (6379) are other services." +
                    (usedTls ? string.Empty : " If the server uses TLS, set RaySessionOptions.UseTls (or RAY_USE_TLS=1)."), error);
            }
        }

        if (error is OperationCanceledException || rpc is { StatusCode: StatusCode.DeadlineExceeded or StatusCode.Cancelled })
        {
            return new RayConnectionException(
                $"Could not connect to {address} within {timeout.TotalSeconds:0.#} s: no answer. A firewall may drop the traffic, or the server is overloaded.", isTransient: true, error);
        }

        if (rpc is { StatusCode: StatusCode.Unauthenticated or StatusCode.PermissionDenied })
        {
            return sentToken
                ? new RayAuthenticationException(
                    $"{address} refused the authentication token ({rpc.Status.Detail}). Check that RaySessionOptions.AuthToken " +
                    "(or RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token) holds the cluster's current token.", error)
                : new RayAuthenticationException(
                    $"{address} requires token authentication ({rpc.Status.Detail}), and no token was sent. Set RaySessionOptions.AuthToken, " +
                    "the environment variable RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, or RAY_AUTH_MODE=token with the token in ~/.ray/auth_token.", error);
        }

        return new RayConnectionException($"Could not connect to {address}: {(rpc?.Status.Detail is { Length: > 0 } d ? d : error.Message)}", isTransient: true, error);
    }

    /// <summary>Connecting kept failing transiently until the connect deadline.</summary>
    public static RayConnectionException ConnectDeadlineExceeded(RayAddress address, TimeSpan deadline, int attempts, RayConnectionException? last) =>
        new(
            $"Could not connect to {address} within the connect deadline of {deadline.TotalSeconds:0.#} s ({attempts} attempt{(attempts == 1 ? string.Empty : "s")}). " +
            (last is null ? "No attempt was answered: a firewall may drop the traffic, or the server is overloaded." : $"Last answer: {last.Message}") +
            " Raise RaySessionOptions.ConnectDeadline if the server needs longer to start.",
            isTransient: true,
            last);

    public static RayException InitFailed(string message, RayAddress address) =>
        message.Contains("RuntimeEnvSetupError", StringComparison.Ordinal) || message.Contains("runtime_env", StringComparison.Ordinal)
            ? new RayRuntimeEnvException($"The Ray client server at {address} could not set up the job's runtime env: {message}")
            : new RayConnectionException($"The Ray client server at {address} refused to start the job: {message}", isTransient: false);

    /// <summary>Maps a decoded Python error to the RayClient exception type a .NET caller can act on.</summary>
    public static RayException FromPythonError(PythonError error, string context)
    {
        var type = error.TypeName;
        var shortType = type[(type.LastIndexOf('.') + 1)..];
        if (shortType.Contains("GetTimeoutError", StringComparison.Ordinal))
        {
            return new RayTimeoutException($"{context}: {error.Message}");
        }

        if (shortType.StartsWith("RayTaskError", StringComparison.Ordinal))
        {
            var cause = error.Cause;
            var causeType = cause?.TypeName ?? InnerTypeOf(shortType) ?? type;
            var causeMessage = cause?.Message ?? error.Message;
            var function = error.FunctionName is { Length: > 0 } f ? $" in {f}" : string.Empty;
            var message = $"{context}: the task raised {ShortName(causeType)}{function}: {causeMessage}";
            if (error.Traceback is { Length: > 0 } tb)
            {
                message += Environment.NewLine + tb.TrimEnd();
            }

            return new RayTaskException(message, causeType, causeMessage, error.Traceback);
        }

        if (shortType is "RayActorError" or "ActorDiedError" or "ActorUnavailableError" or "ActorUnschedulableError")
        {
            return new RayActorException($"{context}: {error.Message}");
        }

        if (shortType is "TaskCancelledError")
        {
            return new RayTaskCancelledException($"{context}: {error.Message}");
        }

        if (shortType is "ObjectStoreFullError")
        {
            return new RayObjectStoreFullException($"{context}: the object store is full: {error.Message}");
        }

        if (shortType is "RuntimeEnvSetupError")
        {
            return new RayRuntimeEnvException($"{context}: the runtime env could not be set up: {error.Message}");
        }

        if (shortType is "ValueError" && error.Message.Contains("not found", StringComparison.Ordinal)
            && (error.Message.Contains("ClientObjectRef", StringComparison.Ordinal) || error.Message.Contains("client", StringComparison.Ordinal)))
        {
            return new RayObjectNotFoundException($"{context}: {error.Message}. The object was released, or belongs to another session.");
        }

        return new RayTaskException($"{context}: {ShortName(type)}: {error.Message}", type, error.Message, error.Traceback);
    }

    private static string? InnerTypeOf(string dualName)
    {
        // "RayTaskError(ValueError)" → "ValueError"
        var open = dualName.IndexOf('(', StringComparison.Ordinal);
        return open > 0 && dualName.EndsWith(')') ? dualName[(open + 1)..^1] : null;
    }

    private static string ShortName(string qualified) =>
        qualified.StartsWith("builtins.", StringComparison.Ordinal) ? qualified["builtins.".Length..] : qualified;

    private static T? FindInner<T>(Exception? error)
        where T : Exception
    {
        for (var current = error; current is not null; current = current.InnerException)
        {
            if (current is T match)
            {
                return match;
            }
        }

        return null;
    }
}
