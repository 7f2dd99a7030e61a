//+------------------------------------------------------------------+
//|                                                      Signals.mqh |
//|  READY and heartbeat files that let mt5exec confirm that an      |
//|  Expert Advisor it deployed is loaded, initialised and running.  |
//+------------------------------------------------------------------+
// The format is defined here and in python/mt5exec/mt5/experts.py, once each; the tests check
// that the MT5EXEC_* defines below match the Python constants. In the terminal's file sandbox,
// <data folder>\MQL5\Files\mt5exec\, the EA writes:
//   <program>.ready      "READY <unix time> <account login> <symbol>\r\n"  when OnInit succeeded
//   <program>.heartbeat  "HEARTBEAT <unix time> <seq>\r\n"                 every N s from OnTimer
// <program> is the EA's file name without .ex5 (MQL_PROGRAM_NAME). Times are TimeGMT(): UNIX
// seconds of the host clock, which the server compares with its own clock on the same host
// (TimeCurrent() is the broker's clock, hours off). Text is UTF-8 so that any symbol name
// reads the same on the server whatever the Windows code page.
//
// Use: Mt5execSignalsInit(seconds) then Mt5execSignalReady() and Mt5execHeartbeat() at the end
// of OnInit, Mt5execHeartbeat() in OnTimer, Mt5execSignalsDeinit() in OnDeinit.
#ifndef MT5EXEC_SIGNALS_MQH
#define MT5EXEC_SIGNALS_MQH

#define MT5EXEC_SIGNALS_DIR      "mt5exec"
#define MT5EXEC_READY_SUFFIX     ".ready"
#define MT5EXEC_HEARTBEAT_SUFFIX ".heartbeat"
#define MT5EXEC_READY_TAG        "READY"
#define MT5EXEC_HEARTBEAT_TAG    "HEARTBEAT"
#define MT5EXEC_LINE_END         "\r\n"

long g_mt5exec_heartbeat_seq = 0;

//--- MQL5\Files\mt5exec\<program><suffix>, relative to the sandbox as FileOpen expects
string Mt5execSignalPath(const string suffix)
  {
   return(MT5EXEC_SIGNALS_DIR + "\\" + MQLInfoString(MQL_PROGRAM_NAME) + suffix);
  }

//--- Replaces the file with one line. FILE_WRITE without FILE_READ truncates, FileOpen creates
//--- the folder. FILE_SHARE_READ: the server may be reading the previous line right now, and
//--- without it that read would make this open fail with a sharing violation.
bool Mt5execWriteSignal(const string suffix, const string line)
  {
   string path = Mt5execSignalPath(suffix);
   ResetLastError();
   int handle = FileOpen(path, FILE_WRITE | FILE_TXT | FILE_ANSI | FILE_SHARE_READ, 0, CP_UTF8);
   if(handle == INVALID_HANDLE)
     {
      PrintFormat("mt5exec: cannot open %s, error %d", path, GetLastError());
      return(false);
     }
   //--- the line end goes last: the server ignores a line it catches without one
   uint written = FileWriteString(handle, line + MT5EXEC_LINE_END);
   int error = GetLastError();
   FileFlush(handle);
   FileClose(handle);
   if(written == 0)
     {
      PrintFormat("mt5exec: cannot write %s, error %d", path, error);
      return(false);
     }
   return(true);
  }

//--- Call last in OnInit, once everything else has succeeded.
bool Mt5execSignalReady()
  {
   string line = MT5EXEC_READY_TAG + " " + IntegerToString((long)TimeGMT()) + " " +
                 IntegerToString(AccountInfoInteger(ACCOUNT_LOGIN)) + " " + _Symbol;
   return(Mt5execWriteSignal(MT5EXEC_READY_SUFFIX, line));
  }

//--- Call from OnTimer (and once in OnInit so that confirmation need not wait N seconds).
bool Mt5execHeartbeat()
  {
   g_mt5exec_heartbeat_seq++;
   string line = MT5EXEC_HEARTBEAT_TAG + " " + IntegerToString((long)TimeGMT()) + " " +
                 IntegerToString(g_mt5exec_heartbeat_seq);
   return(Mt5execWriteSignal(MT5EXEC_HEARTBEAT_SUFFIX, line));
  }

//--- Starts the heartbeat timer. OnTimer runs without ticks, so a closed market does not look
//--- like a dead EA.
bool Mt5execSignalsInit(const int heartbeat_seconds)
  {
   g_mt5exec_heartbeat_seq = 0;
   if(heartbeat_seconds < 1)
     {
      PrintFormat("mt5exec: heartbeat interval must be at least 1 s, got %d", heartbeat_seconds);
      return(false);
     }
   ResetLastError();
   if(!EventSetTimer(heartbeat_seconds))
     {
      PrintFormat("mt5exec: EventSetTimer(%d) failed, error %d", heartbeat_seconds, GetLastError());
      return(false);
     }
   return(true);
  }

//--- Stops the timer and withdraws READY, so that a watchdog tells a removed EA from a frozen one.
void Mt5execSignalsDeinit()
  {
   EventKillTimer();
   string path = Mt5execSignalPath(MT5EXEC_READY_SUFFIX);
   ResetLastError();
   if(FileIsExist(path) && !FileDelete(path))
      PrintFormat("mt5exec: cannot delete %s, error %d", path, GetLastError());
  }

#endif // MT5EXEC_SIGNALS_MQH
