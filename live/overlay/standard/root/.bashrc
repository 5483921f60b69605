# ~/.bashrc: executed by bash(1) for non-login shells (and by ~/.profile).

# Finnix: the prompt names the console, as Finnix always has (root@tty0:~#).
PS1="\u@${FINNIX_CONSOLE:-\h}:\w\\$ "
umask 022

export LS_OPTIONS='--color=auto'
eval "$(dircolors)"
alias ls='ls $LS_OPTIONS'
alias ll='ls $LS_OPTIONS -l'
alias l='ls $LS_OPTIONS -lA'
