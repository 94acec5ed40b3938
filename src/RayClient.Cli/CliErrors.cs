namespace RayClient.Cli;

/// <summary>
/// Turns the failures a user can fix (a bad address, a missing interpreter, a busy port, a refused
/// connection) into one <c>error:</c> line that says what to do; programming errors keep their trace.
/// </summary>
internal static class CliErrors
{
    public static bool IsUserFacing(Exception error) => error is ArgumentException or RayException or IOException or InvalidOperationException
        or UnauthorizedAccessException or System.Net.Sockets.SocketException or System.Security.Cryptography.CryptographicException;

    public static Task WriteAsync(TextWriter writer, Exception error) => writer.WriteLineAsync($"error: {Describe(error)}");

    /// <summary>The first line of the message, without the "(Parameter 'x')" suffix ArgumentException appends.</summary>
    public static string Describe(Exception error)
    {
        var message = error.Message;
        var newline = message.IndexOfAny(['\r', '\n']);
        message = (newline >= 0 ? message[..newline] : message).Trim();
        if (error is ArgumentException { ParamName: { } name })
        {
            var suffix = $"(Parameter '{name}')";
            if (message.EndsWith(suffix, StringComparison.Ordinal))
            {
                message = message[..^suffix.Length].TrimEnd();
            }
        }

        return message;
    }
}
