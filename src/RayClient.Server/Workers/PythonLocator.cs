using System.Diagnostics;

namespace RayClient.Server.Workers;

/// <summary>
/// Finds the real Python interpreter once. <c>python3</c> on PATH is often a launcher (pyenv,
/// asdf) that costs hundreds of milliseconds per start, so workers are started with
/// <c>sys.executable</c> instead.
/// </summary>
internal static class PythonLocator
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, (string Path, string Version)> Cache = new(StringComparer.Ordinal);

    public static (string Path, string Version) Resolve(string? configured)
    {
        var candidate = configured ?? Environment.GetEnvironmentVariable("RAYCLIENT_PYTHON") ?? "python3";
        lock (Gate)
        {
            if (Cache.TryGetValue(candidate, out var found))
            {
                return found;
            }

            var info = new ProcessStartInfo(candidate)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add("import sys; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3])");
            Process process;
            try
            {
                process = Process.Start(info) ?? throw new InvalidOperationException("Process.Start returned null.");
            }
            catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                throw new InvalidOperationException(
                    $"The embedded Ray server needs Python 3.8 or later, but '{candidate}' could not be started ({ex.Message}). " +
                    "Install python3, or name an interpreter with LocalRayServerOptions.PythonExecutable (rayclient start --python) or the environment variable RAYCLIENT_PYTHON.", ex);
            }

            using (process)
            {
                var output = process.StandardOutput.ReadToEnd();
                var error = process.StandardError.ReadToEnd();
                process.WaitForExit();
                var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (process.ExitCode != 0 || lines.Length < 2)
                {
                    throw new InvalidOperationException($"'{candidate}' is not a working Python interpreter (exit {process.ExitCode}): {error.Trim()}");
                }

                var version = lines[1];
                var parts = version.Split('.');
                if (int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture) < 3
                    || (parts[0] == "3" && int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) < 8))
                {
                    throw new InvalidOperationException($"The embedded Ray server needs Python 3.8 or later (pickle protocol 5); '{candidate}' is Python {version}.");
                }

                var path = string.IsNullOrEmpty(lines[0]) ? candidate : lines[0];
                Cache[candidate] = (path, version);
                return (path, version);
            }
        }
    }
}
